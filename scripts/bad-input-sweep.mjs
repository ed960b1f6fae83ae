// Bad-input sweep: tries many classes of bad input and faults against the `lmf` CLI as a hostile new user
// would, and prints one line per class (class, command, exit code, verdict, stderr line), then `N passed,
// M failed`; exits 1 if any class is BAD.
//
//   node --import tsx scripts/bad-input-sweep.mjs [--verbose] [--only SUBSTRING]
//
// Verdicts:
//   (a) an error class is GOOD when the command exits non-zero, stderr has a line starting with `error [`
//       (LmfError's format), no JavaScript stack trace (/^\s+at .*\(.*:\d+:\d+\)/ or a bare `at file:L:C`
//       line), no "looks like a bug in LMFactory", no signal (crash) and no timeout; some classes add an
//       expectation (a file left untouched, the port or row named), written beside each class.
//   (b) a class where success is right is GOOD when the command exits 0 and the expectation written
//       beside it holds.
// Every command runs with a 120 s timeout (a timeout is BAD: a hang). All files are made in a temporary
// folder under os.tmpdir(), removed at the end. Only loopback addresses are used.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TIMEOUT_MS = 120_000;
const VERBOSE = process.argv.includes('--verbose');
const ONLY = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : null;
const T = mkdtempSync(path.join(os.tmpdir(), 'lmf-sweep-'));
const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;

const children = new Set();
let roDir = null;
function cleanup() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  if (roDir) {
    try {
      chmodSync(roDir, 0o755);
    } catch {
      /* gone */
    }
  }
  rmSync(T, { recursive: true, force: true });
}
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});
process.on('SIGTERM', () => {
  cleanup();
  process.exit(143);
});

// ---------------------------------------------------------------------------------------------------------
// running the CLI

const env = { ...process.env, LMF_CACHE: path.join(T, 'cache'), NO_COLOR: '1' };
delete env.LMF_DEBUG;

/**
 * Runs `lmf ARGS` from the sources (as spawnSync with a timeout would, but asynchronously so that a server
 * held in this process, such as the port blocker, keeps working). `onStdout(text, child)` may kill it early.
 */
function lmf(args, { timeoutMs = TIMEOUT_MS, onStdout } = {}) {
  const argv = ['--import', 'tsx', 'src/cli/main-entry.ts', ...args];
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, argv, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let killedByUs = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (d) => {
      stdout += d;
      if (onStdout && !killedByUs && onStdout(stdout)) {
        killedByUs = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ args, status, signal, stdout, stderr, timedOut, killedByUs, ms: Date.now() - started });
    });
  });
}

const STACK = [/^\s+at .*\(.*:\d+:\d+\)/m, /^\s+at (file:\/\/|node:|\/)\S*:\d+:\d+\s*$/m];

/** Rule (a): a clean LmfError. Returns null when it holds, else the reason. */
function lmfErrorProblem(r) {
  if (r.timedOut) return `timed out after ${TIMEOUT_MS / 1000} s (hang)`;
  if (r.signal) return `killed by ${r.signal} (crash)`;
  if (r.status === 0) return 'exited 0: the bad input was accepted';
  if (!/^error \[/m.test(r.stderr)) return 'no line starting with "error [" on stderr';
  if (STACK.some((re) => re.test(r.stderr))) return 'a JavaScript stack trace on stderr';
  if (/looks like a bug in LMFactory/.test(r.stderr))
    return 'reported as "looks like a bug in LMFactory" (an unhandled error)';
  return null;
}

/** No crash, hang, stack trace or "bug" message, whatever the exit code. */
function crashProblem(r) {
  if (r.timedOut) return `timed out after ${TIMEOUT_MS / 1000} s (hang)`;
  if (r.signal) return `killed by ${r.signal} (crash)`;
  if (STACK.some((re) => re.test(r.stderr))) return 'a JavaScript stack trace on stderr';
  if (/looks like a bug in LMFactory/.test(r.stderr)) return 'reported as "looks like a bug in LMFactory"';
  if (/FATAL ERROR|Aborted|Segmentation fault|core dumped/.test(r.stderr)) return 'a fatal runtime error on stderr';
  return null;
}

const results = [];

/**
 * One class. `fn` runs the command(s) and returns { r, problem } where problem is null for GOOD.
 * A throw inside fn (a broken set-up) counts as BAD with the thrown message.
 */
async function check(name, expectation, fn) {
  if (ONLY && !name.includes(ONLY)) return;
  let out;
  try {
    out = await fn();
  } catch (err) {
    out = { r: null, problem: `sweep set-up failed: ${err?.stack ?? err}` };
  }
  const { r, problem } = out;
  const row = { name, expectation, r, problem, verdict: problem ? 'BAD' : 'GOOD' };
  results.push(row);
  process.stderr.write(`  ${row.verdict.padEnd(4)} ${name}${r ? ` (${(r.ms / 1000).toFixed(1)} s)` : ''}\n`);
  if (VERBOSE && r) process.stderr.write(`${indent(r.stderr)}\n`);
}

/** An error class: rule (a) plus optional extra checks (each returns null or a reason). */
async function expectError(name, expectation, args, ...extra) {
  await check(name, expectation, async () => {
    const argv = typeof args === 'function' ? await args() : args;
    const r = await lmf(argv);
    let problem = lmfErrorProblem(r);
    for (const x of extra) problem ??= await x(r);
    return { r, problem };
  });
}

// ---------------------------------------------------------------------------------------------------------
// inputs

const DATA = path.join(ROOT, 'data');
let MODEL;
let SMALLVOCAB;
const ADAPTER = path.join(T, 'adapter');

function yamlValue(v) {
  if (typeof v === 'string' && (v === '' || /[:#\n"'{}[\],&*!|>%@`]|^\s|\s$/.test(v))) return JSON.stringify(v);
  return String(v);
}

/** A training YAML: the fast LoRA defaults below, `fields` over them (undefined drops a key). */
function config(name, fields = {}) {
  const c = {
    model_name_or_path: MODEL,
    stage: 'sft',
    dataset: 'identity',
    dataset_dir: DATA,
    template: 'llama2',
    cutoff_len: 64,
    max_steps: 2,
    finetuning_type: 'lora',
    per_device_train_batch_size: 2,
    logging_steps: 1,
    output_dir: path.join(T, 'out', name),
    overwrite_output_dir: true,
    ...fields,
  };
  const file = path.join(T, 'cfg', `${name}.yaml`);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(
    file,
    Object.entries(c)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}: ${yamlValue(v)}\n`)
      .join(''),
  );
  return file;
}

/** A raw YAML file. */
function rawConfig(name, text) {
  const file = path.join(T, 'cfg', `${name}.yaml`);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
  return file;
}

/** A dataset folder with dataset_info.json (object or raw text) and files { name: contents }. */
function dataset(name, info, files) {
  const dir = path.join(T, 'ds', name);
  mkdirSync(dir, { recursive: true });
  if (info !== null)
    writeFileSync(path.join(dir, 'dataset_info.json'), typeof info === 'string' ? info : JSON.stringify(info, null, 2));
  for (const [f, text] of Object.entries(files)) writeFileSync(path.join(dir, f), text);
  return dir;
}

/** A copy of the tiny model folder to break. */
function modelCopy(name) {
  const dir = path.join(T, 'models', name);
  cpSync(MODEL, dir, { recursive: true });
  return dir;
}

function sha256(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function fingerprint(file) {
  const s = statSync(file);
  return `${sha256(file)}:${s.size}:${s.mtimeMs}`;
}

/** safetensors: 8-byte little-endian header length, JSON header, then the data. */
function readSafetensors(file) {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  return { bytes, header, dataStart: 8 + n };
}

function writeSafetensors(file, header, data) {
  let h = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (h.length % 8)) % 8;
  h = Buffer.concat([h, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(file, Buffer.concat([len, h, data]));
}

/** Rewrites a model's safetensors with `edit(header)` applied; the data is repacked to the entries left. */
function editSafetensors(file, edit) {
  const { bytes, header, dataStart } = readSafetensors(file);
  const next = edit(structuredClone(header));
  const parts = [];
  let at = 0;
  const out = {};
  for (const [name, e] of Object.entries(next)) {
    if (name === '__metadata__') {
      out[name] = e;
      continue;
    }
    const [a, b] = header[name].data_offsets;
    const chunk = bytes.subarray(dataStart + a, dataStart + b);
    parts.push(chunk);
    out[name] = { ...e, data_offsets: [at, at + chunk.length] };
    at += chunk.length;
  }
  writeSafetensors(file, out, Buffer.concat(parts));
}

function firstStderrLine(r) {
  if (!r) return '';
  const lines = r.stderr.split('\n').filter((l) => l.trim());
  return (lines.find((l) => /^error/.test(l)) ?? lines[0] ?? '').trim();
}

function display(s) {
  return s
    .split(T)
    .join('$TMP')
    .split(ROOT + path.sep)
    .join('');
}

function commandLine(r) {
  if (!r) return '(set-up)';
  return `lmf ${r.args.map((a) => (/[\s"'$]/.test(a) || a === '' ? JSON.stringify(a) : a)).join(' ')}`;
}

function indent(text, n = 4) {
  return text
    .split('\n')
    .map((l) => ' '.repeat(n) + l)
    .join('\n');
}

const mentions = (re, what) => (r) => (re.test(r.stderr) ? null : `stderr does not mention ${what} (${re})`);

// ---------------------------------------------------------------------------------------------------------
// set-up: one tiny model (reused), one with a 1000-row vocabulary, one LoRA adapter with checkpoints

let helpers;
try {
  helpers = await import(pathToFileURL(path.join(ROOT, 'test', 'helpers.ts')).href);
} catch (err) {
  process.stderr.write(
    `cannot import test/helpers.ts (${err.message}): run this as node --import tsx scripts/bad-input-sweep.mjs\n`,
  );
  cleanup();
  process.exit(2);
}
process.stderr.write(`bad-input sweep in ${T}${IS_ROOT ? ' (running as root)' : ''}\n`);
const t0 = Date.now();
MODEL = await helpers.makeTinyModelFolder(path.join(T, 'tiny'));
SMALLVOCAB = await helpers.makeTinyModelFolder(path.join(T, 'tiny-vocab1000'), { vocab_size: 1000 });

// (b) the baseline: a valid LoRA run writes an adapter and checkpoints (used by export, resume, generate
// below). GOOD: exit 0, adapter_config.json + adapter_model.safetensors + a checkpoint-N/trainer_state.json.
await check('setup: valid LoRA run (baseline)', '(b) exit 0; adapter files and a checkpoint-N written', async () => {
  const r = await lmf(['train', config('baseline', { output_dir: ADAPTER, save_steps: 1 })]);
  let problem = r.status === 0 ? crashProblem(r) : `exit ${r.status ?? r.signal}${r.timedOut ? ' (timeout)' : ''}`;
  for (const f of ['adapter_config.json', 'adapter_model.safetensors']) {
    if (!problem && !existsSync(path.join(ADAPTER, f))) problem = `${f} not written`;
  }
  if (
    !problem &&
    !(
      existsSync(ADAPTER) &&
      readdirSync(ADAPTER).some(
        (n) => /^checkpoint-\d+$/.test(n) && existsSync(path.join(ADAPTER, n, 'trainer_state.json')),
      )
    )
  ) {
    problem = 'no checkpoint-N/trainer_state.json written (save_steps 1)';
  }
  return { r, problem };
});

// ---------------------------------------------------------------------------------------------------------
// config

await expectError(
  'config: unknown key (typo)',
  '(a) + names the closest key',
  ['train', rawConfig('typo', `model_name_or_path: ${MODEL}\nstage: sft\nlearning_rat: 1.0e-4\n`)],
  mentions(/learning_rate/, 'the closest key learning_rate'),
);
await expectError('config: wrong type', '(a)', ['train', config('wrongtype', { lora_rank: 'eight' })]);
await expectError(
  'config: bad enum value',
  '(a) + suggests sft',
  ['train', config('badenum', { stage: 'sfft' })],
  mentions(/"sft"/, 'the suggestion "sft"'),
);
await expectError('config: YAML syntax error', '(a)', [
  'train',
  rawConfig('syntax', `model_name_or_path: ${MODEL}\nstage: [sft\ndataset: identity\n`),
]);
await expectError('config: empty YAML file', '(a)', ['train', rawConfig('empty', '')]);
await expectError('config: YAML that is a list', '(a)', [
  'train',
  rawConfig('list', `- model_name_or_path: ${MODEL}\n- stage: sft\n`),
]);
await expectError('config: YAML that is a scalar', '(a)', ['train', rawConfig('scalar', 'just some words\n')]);
await expectError('config: missing model_name_or_path', '(a)', [
  'train',
  config('nomodel', { model_name_or_path: undefined }),
]);
await expectError('config: config file missing', '(a)', ['train', path.join(T, 'cfg', 'does-not-exist.yaml')]);
await expectError('config: config path is a folder', '(a)', ['train', DATA]);
await expectError('config: binary garbage as config', '(a)', () => {
  const f = path.join(T, 'cfg', 'garbage.yaml');
  writeFileSync(f, Buffer.from([0x00, 0xff, 0xfe, 0x1b, 0x5b, 0x7b, 0x3a, 0x00, 0x89, 0x50, 0x4e, 0x47]));
  return ['train', f];
});
await expectError('config: duplicate key', '(a)', [
  'train',
  rawConfig('dupkey', `model_name_or_path: ${MODEL}\nstage: sft\nstage: pt\n`),
]);
await expectError('config: override without =', '(a)', ['train', config('ovr-noeq'), 'learning_rate']);
await expectError(
  'config: override of unknown key',
  '(a) + suggests max_steps',
  ['train', config('ovr-unknown'), 'max_step=3'],
  mentions(/max_steps/, 'the suggestion max_steps'),
);
await expectError('config: override with a bad value', '(a)', ['train', config('ovr-badval'), 'learning_rate=fast']);
await expectError('config: unknown template', '(a)', ['train', config('badtemplate', { template: 'llama22' })]);

// ---------------------------------------------------------------------------------------------------------
// model

await expectError('model: folder missing', '(a)', [
  'train',
  config('m-missing', { model_name_or_path: path.join(T, 'no-such-model') }),
]);
await expectError('model: path is a file', '(a)', [
  'train',
  config('m-file', { model_name_or_path: path.join(MODEL, 'config.json') }),
]);
await expectError('model: config.json missing', '(a)', () => {
  const d = modelCopy('noconfig');
  rmSync(path.join(d, 'config.json'));
  return ['train', config('m-noconfig', { model_name_or_path: d })];
});
await expectError(
  'model: config.json invalid JSON',
  '(a) + names config.json',
  () => {
    const d = modelCopy('badconfig');
    writeFileSync(path.join(d, 'config.json'), '{"model_type": "llama", "hidden_size": 64,');
    return ['train', config('m-badconfig', { model_name_or_path: d })];
  },
  mentions(/config\.json/, 'config.json'),
);
await expectError('model: config.json is a JSON array', '(a)', () => {
  const d = modelCopy('arrayconfig');
  writeFileSync(path.join(d, 'config.json'), '[1, 2, 3]');
  return ['train', config('m-arrayconfig', { model_name_or_path: d })];
});
await expectError(
  'model: unsupported model_type',
  '(a) + names gpt2',
  () => {
    const d = modelCopy('gpt2');
    const cfg = JSON.parse(readFileSync(path.join(d, 'config.json'), 'utf8'));
    writeFileSync(path.join(d, 'config.json'), JSON.stringify({ ...cfg, model_type: 'gpt2' }));
    return ['train', config('m-gpt2', { model_name_or_path: d })];
  },
  mentions(/gpt2/, 'the model_type gpt2'),
);
await expectError('model: heads inconsistent (num_key_value_heads 3)', '(a)', () => {
  const d = modelCopy('kvheads');
  const cfg = JSON.parse(readFileSync(path.join(d, 'config.json'), 'utf8'));
  writeFileSync(path.join(d, 'config.json'), JSON.stringify({ ...cfg, num_key_value_heads: 3 }));
  return ['train', config('m-kvheads', { model_name_or_path: d })];
});
await expectError(
  'model: safetensors truncated',
  '(a) + names model.safetensors',
  () => {
    const d = modelCopy('truncated');
    const f = path.join(d, 'model.safetensors');
    truncateSync(f, Math.floor(statSync(f).size * 0.8));
    return ['train', config('m-truncated', { model_name_or_path: d })];
  },
  mentions(/model\.safetensors/, 'model.safetensors'),
);
await expectError('model: safetensors empty (0 bytes)', '(a)', () => {
  const d = modelCopy('empty-st');
  writeFileSync(path.join(d, 'model.safetensors'), '');
  return ['train', config('m-empty-st', { model_name_or_path: d })];
});
await expectError(
  'model: safetensors header garbage',
  '(a) + names model.safetensors',
  () => {
    const d = modelCopy('garbage-header');
    const f = path.join(d, 'model.safetensors');
    const b = readFileSync(f);
    for (let i = 8; i < 40; i++) b[i] = (i * 37) & 0xff;
    writeFileSync(f, b);
    return ['train', config('m-garbage-header', { model_name_or_path: d })];
  },
  mentions(/model\.safetensors/, 'model.safetensors'),
);
await expectError('model: safetensors header length absurd', '(a)', () => {
  const d = modelCopy('huge-header');
  const f = path.join(d, 'model.safetensors');
  const b = readFileSync(f);
  b.writeBigUInt64LE(1n << 40n, 0);
  writeFileSync(f, b);
  return ['train', config('m-huge-header', { model_name_or_path: d })];
});
await expectError(
  'model: tensor missing',
  '(a) + names the tensor',
  () => {
    const d = modelCopy('missing-tensor');
    editSafetensors(path.join(d, 'model.safetensors'), (h) => {
      delete h['model.layers.1.mlp.up_proj.weight'];
      return h;
    });
    return ['train', config('m-missing-tensor', { model_name_or_path: d })];
  },
  mentions(/layers\.1\.mlp\.up_proj/, 'the tensor model.layers.1.mlp.up_proj.weight'),
);
await expectError(
  'model: tensor wrong shape',
  '(a) + names the tensor',
  () => {
    const d = modelCopy('wrong-shape');
    editSafetensors(path.join(d, 'model.safetensors'), (h) => {
      h['model.layers.1.mlp.up_proj.weight'].shape = [64, 128];
      return h;
    });
    return ['train', config('m-wrong-shape', { model_name_or_path: d })];
  },
  mentions(/up_proj/, 'the tensor up_proj'),
);
await expectError('model: tensor dtype unsupported (I32)', '(a)', () => {
  const d = modelCopy('dtype');
  editSafetensors(path.join(d, 'model.safetensors'), (h) => {
    h['model.norm.weight'].dtype = 'I32';
    return h;
  });
  return ['train', config('m-dtype', { model_name_or_path: d })];
});
await expectError('model: NaN in a weight tensor', '(a): NaN weights (or the NaN loss they cause) stop the run', () => {
  const d = modelCopy('nan');
  const f = path.join(d, 'model.safetensors');
  const { bytes, header, dataStart } = readSafetensors(f);
  const e = header['model.layers.0.self_attn.q_proj.weight'];
  const at = dataStart + e.data_offsets[0];
  if (e.dtype !== 'F32') throw new Error(`expected F32, got ${e.dtype}`);
  for (let i = 0; i < 64; i++) bytes.writeUInt32LE(0x7fc00000, at + 4 * i);
  writeFileSync(f, bytes);
  return ['train', config('m-nan', { model_name_or_path: d })];
});
await expectError('model: tokenizer.json missing', '(a)', () => {
  const d = modelCopy('notok');
  rmSync(path.join(d, 'tokenizer.json'));
  return ['train', config('m-notok', { model_name_or_path: d })];
});
await expectError(
  'model: tokenizer.json corrupt',
  '(a) + names tokenizer.json',
  () => {
    const d = modelCopy('badtok');
    writeFileSync(path.join(d, 'tokenizer.json'), readFileSync(path.join(d, 'tokenizer.json'), 'utf8').slice(0, 5000));
    return ['train', config('m-badtok', { model_name_or_path: d })];
  },
  mentions(/tokenizer\.json/, 'tokenizer.json'),
);
await expectError('model: tokenizer_config.json corrupt', '(a)', () => {
  const d = modelCopy('badtokcfg');
  writeFileSync(path.join(d, 'tokenizer_config.json'), '{"bos_token": ');
  return ['train', config('m-badtokcfg', { model_name_or_path: d })];
});
await expectError('model: tokenizer has more tokens than vocab_size (32000 vs 1000)', '(a), no native crash', [
  'train',
  config('m-vocab', { model_name_or_path: SMALLVOCAB }),
]);
await expectError('model: generate with vocab_size < tokenizer', '(a), no native crash', [
  'generate',
  '--model',
  SMALLVOCAB,
  '--template',
  'llama2',
  '--max-new-tokens',
  '4',
  'Who are you?',
]);

// ---------------------------------------------------------------------------------------------------------
// data

const rows = (n, bad = new Set()) =>
  Array.from({ length: n }, (_, i) => ({
    instruction: `Question ${i + 1}?`,
    input: '',
    output: bad.has(i + 1) ? '' : `Answer ${i + 1}.`,
  }));

await expectError(
  'data: dataset name not in dataset_info.json',
  '(a) + names the dataset',
  ['train', config('d-unknown', { dataset: 'identty' })],
  mentions(/identty/, 'the dataset name'),
);
await expectError(
  'data: dataset_info.json invalid JSON',
  '(a) + names dataset_info.json',
  () => {
    const d = dataset('badinfo', '{"d": {"file_name": "d.json",', { 'd.json': JSON.stringify(rows(4)) });
    return ['train', config('d-badinfo', { dataset: 'd', dataset_dir: d })];
  },
  mentions(/dataset_info\.json/, 'dataset_info.json'),
);
await expectError('data: dataset_info.json missing', '(a)', () => {
  const d = dataset('noinfo', null, { 'd.json': JSON.stringify(rows(4)) });
  return ['train', config('d-noinfo', { dataset: 'd', dataset_dir: d })];
});
await expectError('data: dataset_dir missing', '(a)', [
  'train',
  config('d-nodir', { dataset_dir: path.join(T, 'no-such-data') }),
]);
await expectError(
  'data: data file missing',
  '(a) + names the file',
  () => {
    const d = dataset('nofile', { d: { file_name: 'd.json' } }, {});
    return ['train', config('d-nofile', { dataset: 'd', dataset_dir: d })];
  },
  mentions(/d\.json/, 'd.json'),
);
await expectError('data: entry without file_name', '(a)', () => {
  const d = dataset('nofilename', { d: { formatting: 'alpaca' } }, {});
  return ['train', config('d-nofilename', { dataset: 'd', dataset_dir: d })];
});
await expectError(
  'data: wrong column name in columns',
  '(a) + names the column',
  () => {
    const d = dataset(
      'badcol',
      { d: { file_name: 'd.json', columns: { prompt: 'question', response: 'answer' } } },
      { 'd.json': JSON.stringify(rows(4)) },
    );
    return ['train', config('d-badcol', { dataset: 'd', dataset_dir: d })];
  },
  mentions(/question|answer/, 'the missing column'),
);
await check(
  'data: malformed JSON row in a .jsonl',
  '(a) naming d.jsonl row 3, or exit 0 with d.jsonl:3 reported as dropped',
  async () => {
    const text = `${JSON.stringify(rows(1)[0])}\n${JSON.stringify(rows(2)[1])}\n{"instruction": "Q3?", "output": \n${JSON.stringify(rows(4)[3])}\n${JSON.stringify(rows(5)[4])}\n`;
    const d = dataset('badjsonl', { d: { file_name: 'd.jsonl' } }, { 'd.jsonl': text });
    const r = await lmf(['train', config('d-badjsonl', { dataset: 'd', dataset_dir: d })]);
    const named = /d\.jsonl(:| row |: row )3\b/.test(r.stderr);
    if (r.status === 0)
      return { r, problem: crashProblem(r) ?? (named ? null : 'exit 0 but d.jsonl:3 not reported as dropped') };
    return { r, problem: lmfErrorProblem(r) ?? (named ? null : 'the error does not name d.jsonl row 3') };
  },
);
await expectError('data: data file empty (0 bytes)', '(a)', () => {
  const d = dataset('emptyfile', { d: { file_name: 'd.json' } }, { 'd.json': '' });
  return ['train', config('d-emptyfile', { dataset: 'd', dataset_dir: d })];
});
await expectError('data: rows wrapped in an object ({"data": [...]})', '(a)', () => {
  const d = dataset('objfile', { d: { file_name: 'd.json' } }, { 'd.json': JSON.stringify({ data: rows(4) }) });
  return ['train', config('d-objfile', { dataset: 'd', dataset_dir: d })];
});
await expectError('data: unsupported file extension', '(a)', () => {
  const d = dataset('badext', { d: { file_name: 'd.xml' } }, { 'd.xml': '<rows><row/></rows>' });
  return ['train', config('d-badext', { dataset: 'd', dataset_dir: d })];
});
await expectError('data: all rows invalid (empty responses)', '(a)', () => {
  const d = dataset(
    'allbad',
    { d: { file_name: 'd.json' } },
    { 'd.json': JSON.stringify(rows(4, new Set([1, 2, 3, 4]))) },
  );
  return ['train', config('d-allbad', { dataset: 'd', dataset_dir: d })];
});
await check('data: 5 rows, 1 invalid', '(b) exit 0 and stderr reports the dropped row as d.json:3', async () => {
  const d = dataset('onebad', { d: { file_name: 'd.json' } }, { 'd.json': JSON.stringify(rows(5, new Set([3]))) });
  const r = await lmf(['train', config('d-onebad', { dataset: 'd', dataset_dir: d })]);
  if (r.status !== 0)
    return {
      r,
      problem: `exit ${r.status ?? r.signal}${r.timedOut ? ' (timeout)' : ''}: the 4 valid rows should train`,
    };
  return {
    r,
    problem:
      crashProblem(r) ??
      (/d\.json(:| row |: row )3\b/.test(r.stderr)
        ? null
        : 'exit 0 but the dropped row d.json:3 is not reported on stderr'),
  };
});
await check(
  'data: 12 rows, 1 invalid (under max_invalid_ratio 0.1)',
  '(b) exit 0 and stderr reports the dropped row as d.json:7',
  async () => {
    const d = dataset('onebad12', { d: { file_name: 'd.json' } }, { 'd.json': JSON.stringify(rows(12, new Set([7]))) });
    const r = await lmf(['train', config('d-onebad12', { dataset: 'd', dataset_dir: d })]);
    if (r.status !== 0)
      return {
        r,
        problem: `exit ${r.status ?? r.signal}${r.timedOut ? ' (timeout)' : ''}: the 11 valid rows should train`,
      };
    return {
      r,
      problem:
        crashProblem(r) ??
        (/d\.json(:| row |: row )7\b/.test(r.stderr)
          ? null
          : 'exit 0 but the dropped row d.json:7 is not reported on stderr'),
    };
  },
);
await check(
  'data: one 10 MB row (data check)',
  '(b) `lmf data check` exits 0 or 1, no crash, within the timeout; stdout says "rows read: 3"',
  async () => {
    const sentence =
      'The committee reviewed 42 proposals, rejected most, and asked for clearer budgets before spring. ';
    const big = sentence.repeat(Math.ceil(10e6 / sentence.length)).slice(0, 10e6);
    const d = dataset(
      'bigrow',
      { d: { file_name: 'd.json' } },
      { 'd.json': JSON.stringify([{ instruction: big, input: '', output: 'Noted.' }, ...rows(2)]) },
    );
    const r = await lmf(['data', 'check', config('d-bigrow', { dataset: 'd', dataset_dir: d })]);
    const problem =
      crashProblem(r) ??
      (r.status === 0 || r.status === 1 ? null : `exit ${r.status}`) ??
      (/rows read: 3\b/.test(r.stdout) ? null : 'stdout lacks "rows read: 3"');
    return { r, problem };
  },
);
await expectError('data: dpo stage with a non-ranking dataset', '(a)', ['train', config('d-dpo', { stage: 'dpo' })]);

// ---------------------------------------------------------------------------------------------------------
// outputs

await check(
  'output: output_dir = the model folder (full, overwrite)',
  '(a) + model.safetensors unchanged (sha256, size, mtime)',
  async () => {
    const d = modelCopy('out-is-model');
    const f = path.join(d, 'model.safetensors');
    const before = fingerprint(f);
    const r = await lmf([
      'train',
      config('o-model', { model_name_or_path: d, output_dir: d, finetuning_type: 'full' }),
    ]);
    return { r, problem: lmfErrorProblem(r) ?? (fingerprint(f) === before ? null : 'model.safetensors was changed') };
  },
);
await check('output: output_dir inside the model folder', '(a) + model.safetensors unchanged', async () => {
  const d = modelCopy('out-inside-model');
  const f = path.join(d, 'model.safetensors');
  const before = fingerprint(f);
  const r = await lmf(['train', config('o-inside', { model_name_or_path: d, output_dir: path.join(d, 'run') })]);
  return { r, problem: lmfErrorProblem(r) ?? (fingerprint(f) === before ? null : 'model.safetensors was changed') };
});
await check(
  'output: output_dir = the adapter being trained on',
  '(a) + adapter_model.safetensors unchanged',
  async () => {
    const a = path.join(T, 'adapter-as-output');
    cpSync(ADAPTER, a, { recursive: true });
    const f = path.join(a, 'adapter_model.safetensors');
    const before = fingerprint(f);
    const r = await lmf(['train', config('o-adapter', { adapter_name_or_path: a, output_dir: a })]);
    return {
      r,
      problem: lmfErrorProblem(r) ?? (fingerprint(f) === before ? null : 'adapter_model.safetensors was changed'),
    };
  },
);
await expectError(
  'output: output_dir under /proc',
  '(a), fails fast (< 60 s)',
  ['train', config('o-proc', { output_dir: '/proc/lmf-sweep-out/run' })],
  (r) => (r.ms < 60_000 ? null : `took ${(r.ms / 1000).toFixed(0)} s`),
);
{
  // As root, chmod does not stop writes: /sys (sysfs refuses new folders with EPERM) stands in for a
  // read-only location instead.
  let out;
  let label;
  if (IS_ROOT) {
    out = '/sys/lmf-sweep-out';
    label = 'output: output_dir read-only (root: /sys/lmf-sweep-out)';
  } else {
    roDir = path.join(T, 'readonly');
    mkdirSync(roDir);
    chmodSync(roDir, 0o555);
    out = path.join(roDir, 'run');
    label = 'output: output_dir read-only (chmod 555 parent)';
  }
  await expectError(label, '(a)', ['train', config('o-readonly', { output_dir: out })]);
  if (roDir) chmodSync(roDir, 0o755);
}
await expectError('output: output_dir is an existing file', '(a)', () => {
  const f = path.join(T, 'a-file.txt');
  writeFileSync(f, 'not a folder\n');
  return ['train', config('o-file', { output_dir: f })];
});
await expectError('output: output_dir below an existing file', '(a)', () => {
  const f = path.join(T, 'a-file2.txt');
  writeFileSync(f, 'not a folder\n');
  return ['train', config('o-belowfile', { output_dir: path.join(f, 'run') })];
});

// ---------------------------------------------------------------------------------------------------------
// export

function exportConfig(name, fields) {
  return config(name, {
    stage: undefined,
    dataset: undefined,
    dataset_dir: undefined,
    cutoff_len: undefined,
    max_steps: undefined,
    finetuning_type: undefined,
    per_device_train_batch_size: undefined,
    logging_steps: undefined,
    output_dir: undefined,
    overwrite_output_dir: undefined,
    adapter_name_or_path: ADAPTER,
    ...fields,
  });
}

await check(
  "export: export_dir non-empty with a user's file",
  "(a) + the user's file still there, unchanged",
  async () => {
    const dir = path.join(T, 'export-user');
    mkdirSync(dir);
    const mine = path.join(dir, 'my-notes.txt');
    writeFileSync(mine, 'do not delete\n');
    const r = await lmf(['export', exportConfig('e-user', { export_dir: dir })]);
    const kept = existsSync(mine) && readFileSync(mine, 'utf8') === 'do not delete\n';
    return { r, problem: lmfErrorProblem(r) ?? (kept ? null : 'my-notes.txt was deleted or changed') };
  },
);
await check('export: export_dir = the adapter folder', '(a) + adapter_model.safetensors unchanged', async () => {
  const a = path.join(T, 'adapter-as-export');
  cpSync(ADAPTER, a, { recursive: true });
  const f = path.join(a, 'adapter_model.safetensors');
  const before = fingerprint(f);
  const r = await lmf(['export', exportConfig('e-adapter', { adapter_name_or_path: a, export_dir: a })]);
  return {
    r,
    problem:
      lmfErrorProblem(r) ??
      (existsSync(f) && fingerprint(f) === before ? null : 'adapter_model.safetensors was changed or deleted'),
  };
});
await check('export: export_dir = the model folder', '(a) + model.safetensors unchanged', async () => {
  const d = modelCopy('export-into-model');
  const f = path.join(d, 'model.safetensors');
  const before = fingerprint(f);
  const r = await lmf(['export', exportConfig('e-model', { model_name_or_path: d, export_dir: d })]);
  return {
    r,
    problem:
      lmfErrorProblem(r) ??
      (existsSync(f) && fingerprint(f) === before ? null : 'model.safetensors was changed or deleted'),
  };
});
await expectError(
  'export: no export_dir',
  '(a) + names export_dir',
  ['export', exportConfig('e-none', {})],
  mentions(/export_dir/, 'export_dir'),
);
await expectError('export: adapter folder missing', '(a)', [
  'export',
  exportConfig('e-noadapter', {
    adapter_name_or_path: path.join(T, 'no-adapter'),
    export_dir: path.join(T, 'export-x'),
  }),
]);

// ---------------------------------------------------------------------------------------------------------
// resume

await expectError('resume: resume_from_checkpoint true, no checkpoint', '(a)', [
  'train',
  config('r-none', { resume_from_checkpoint: true, overwrite_output_dir: false }),
]);
await expectError('resume: from a folder that is not a checkpoint', '(a)', () => {
  const d = path.join(T, 'not-a-checkpoint');
  mkdirSync(d);
  writeFileSync(path.join(d, 'readme.txt'), 'hello\n');
  return ['train', config('r-notckpt', { resume_from_checkpoint: d })];
});
/** A copy of the baseline's output with `breakIt(checkpointDir)` applied to its last checkpoint. */
function brokenRun(name, breakIt) {
  const out = path.join(T, 'out', name);
  cpSync(ADAPTER, out, { recursive: true });
  const last = readdirSync(out)
    .filter((n) => /^checkpoint-\d+$/.test(n))
    .sort((a, b) => Number(a.slice(11)) - Number(b.slice(11)))
    .pop();
  if (!last) throw new Error('the baseline run left no checkpoint');
  breakIt(path.join(out, last));
  return [
    'train',
    config(name, { output_dir: out, save_steps: 1, resume_from_checkpoint: true, overwrite_output_dir: false }),
  ];
}
await expectError(
  'resume: corrupt trainer_state.json',
  '(a) + names trainer_state.json',
  () =>
    brokenRun('r-corrupt-state', (c) =>
      writeFileSync(path.join(c, 'trainer_state.json'), '{"global_step": 2, "log_history": ['),
    ),
  mentions(/trainer_state\.json/, 'trainer_state.json'),
);
await expectError('resume: checkpoint weights truncated', '(a)', () =>
  brokenRun('r-trunc-weights', (c) => {
    const f =
      readdirSync(c).find((n) => n.endsWith('.safetensors') && n !== 'adapter_model.safetensors') ??
      'adapter_model.safetensors';
    truncateSync(path.join(c, f), 100);
  }),
);

// ---------------------------------------------------------------------------------------------------------
// generate / api

const gen = (...extra) => [
  'generate',
  '--model',
  MODEL,
  '--template',
  'llama2',
  '--max-new-tokens',
  '4',
  ...extra,
  'Who are you?',
];
await expectError('generate: adapter folder missing', '(a)', gen('--adapter', path.join(T, 'no-such-adapter')));
await expectError(
  'generate: adapter_config.json invalid',
  '(a) + names adapter_config.json',
  () => {
    const a = path.join(T, 'adapter-badcfg');
    cpSync(ADAPTER, a, { recursive: true });
    writeFileSync(path.join(a, 'adapter_config.json'), '{"r": 8, "lora_alpha": ');
    return gen('--adapter', a);
  },
  mentions(/adapter_config\.json/, 'adapter_config.json'),
);
await expectError('generate: adapter of another model shape', '(a)', async () => {
  const other = await helpers.makeTinyModelFolder(path.join(T, 'tiny-wide'), {
    hidden_size: 96,
    num_attention_heads: 4,
    num_key_value_heads: 2,
  });
  return [
    'generate',
    '--model',
    other,
    '--template',
    'llama2',
    '--max-new-tokens',
    '4',
    '--adapter',
    ADAPTER,
    'Who are you?',
  ];
});
await expectError('generate: model folder missing', '(a)', [
  'generate',
  '--model',
  path.join(T, 'nope'),
  '--template',
  'llama2',
  'hi',
]);
await expectError('generate: unknown template', '(a)', [
  'generate',
  '--model',
  MODEL,
  '--template',
  'llama22',
  '--max-new-tokens',
  '4',
  'hi',
]);

await check(
  'api: port already in use',
  '(a) + the port is named on stderr; a server that starts anyway is BAD',
  async () => {
    const blocker = net.createServer();
    await new Promise((res, rej) => {
      blocker.once('error', rej);
      blocker.listen(0, '127.0.0.1', res);
    });
    const port = blocker.address().port;
    try {
      const cfg = rawConfig('api', `model_name_or_path: ${MODEL}\ntemplate: llama2\n`);
      const r = await lmf(['api', cfg, '--host', '127.0.0.1', '--port', String(port)], {
        timeoutMs: 60_000,
        onStdout: (s) => /listening/.test(s),
      });
      if (r.killedByUs) return { r, problem: `the server started on 127.0.0.1:${port} although the port is in use` };
      return {
        r,
        problem:
          lmfErrorProblem(r) ?? (r.stderr.includes(String(port)) ? null : `stderr does not name the port ${port}`),
      };
    } finally {
      await new Promise((res) => blocker.close(res));
    }
  },
);
await expectError('api: model folder missing', '(a)', [
  'api',
  rawConfig('api-nomodel', `model_name_or_path: ${path.join(T, 'nope')}\ntemplate: llama2\n`),
  '--port',
  '0',
]);

// ---------------------------------------------------------------------------------------------------------
// numeric

await expectError('numeric: learning_rate negative', '(a)', ['train', config('n-lrneg', { learning_rate: -1e-4 })]);
await expectError('numeric: learning_rate NaN (.nan)', '(a)', ['train', config('n-lrnan', { learning_rate: '.nan' })]);
await expectError('numeric: learning_rate infinite (.inf)', '(a)', [
  'train',
  config('n-lrinf', { learning_rate: '.inf' }),
]);
await expectError('numeric: cutoff_len 0', '(a)', ['train', config('n-cutoff0', { cutoff_len: 0 })]);
await expectError('numeric: lora_rank 0', '(a)', ['train', config('n-rank0', { lora_rank: 0 })]);
await expectError('numeric: per_device_train_batch_size 0', '(a)', [
  'train',
  config('n-bs0', { per_device_train_batch_size: 0 }),
]);
await expectError('numeric: gradient_accumulation_steps 0', '(a)', [
  'train',
  config('n-ga0', { gradient_accumulation_steps: 0 }),
]);
// max_steps -1 is Hugging Face's "not set" (train by epochs): success is right, as in LLaMA-Factory.
await check(
  'numeric: max_steps -1 (HF: unset, train by epochs)',
  '(b) exit 0, 3 steps for 1 epoch of 6 examples at batch 2',
  async () => {
    const r = await lmf(['train', config('n-steps-neg', { max_steps: -1, num_train_epochs: 1 })]);
    if (r.status !== 0) return { r, problem: `exit ${r.status ?? r.signal}${r.timedOut ? ' (timeout)' : ''}` };
    return { r, problem: crashProblem(r) ?? (/\b3 steps\b/.test(r.stderr) ? null : 'stderr does not say "3 steps"') };
  },
);
await expectError('numeric: lora_dropout 1.5', '(a)', ['train', config('n-dropout', { lora_dropout: 1.5 })]);
await expectError('numeric: val_size 10 (more than the 6 examples)', '(a)', [
  'train',
  config('n-valsize', { val_size: 10 }),
]);

// ---------------------------------------------------------------------------------------------------------
// the table

const W = { name: Math.max(...results.map((x) => x.name.length)), cmd: 0 };
const rowsOut = results.map((x) => ({
  ...x,
  cmd: display(commandLine(x.r)),
  exit: x.r ? (x.r.timedOut ? 'TIMEOUT' : (x.r.signal ?? String(x.r.status))) : '-',
  line: display(firstStderrLine(x.r)).slice(0, 180),
}));
W.cmd = Math.min(120, Math.max(...rowsOut.map((x) => x.cmd.length)));
const clip = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s.padEnd(n));
process.stdout.write(`\nbad-input sweep ($TMP = ${T}; stderr column: the first "error" line, else the first line)\n\n`);
process.stdout.write(`${'class'.padEnd(W.name)} | ${'command'.padEnd(W.cmd)} | exit    | verdict | stderr\n`);
process.stdout.write(`${'-'.repeat(W.name)}-+-${'-'.repeat(W.cmd)}-+---------+---------+-------\n`);
for (const x of rowsOut)
  process.stdout.write(
    `${x.name.padEnd(W.name)} | ${clip(x.cmd, W.cmd)} | ${x.exit.padEnd(7)} | ${x.verdict.padEnd(7)} | ${x.line}\n`,
  );

const bad = rowsOut.filter((x) => x.verdict === 'BAD');
if (bad.length) {
  process.stdout.write('\nBAD classes in detail:\n');
  for (const x of bad) {
    process.stdout.write(
      `\n● ${x.name}\n  expected: ${x.expectation}\n  why BAD:  ${display(x.problem)}\n  command:  ${x.cmd}\n`,
    );
    if (x.r) {
      const cfgArg = x.r.args.find((a) => a.endsWith('.yaml') && existsSync(a));
      if (cfgArg)
        process.stdout.write(
          `  config (${display(cfgArg)}):\n${indent(display(readFileSync(cfgArg, 'utf8')).trimEnd(), 4)}\n`,
        );
      const lines = display(x.r.stderr).trimEnd().split('\n');
      process.stdout.write(
        `  exit: ${x.exit}\n  stderr${lines.length > 30 ? ` (first 30 of ${lines.length} lines)` : ''}:\n${indent(lines.slice(0, 30).join('\n'), 4)}\n`,
      );
    }
  }
}
const passed = results.length - bad.length;
process.stdout.write(`\n${passed} passed, ${bad.length} failed (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
cleanup();
process.exitCode = bad.length ? 1 : 0;
