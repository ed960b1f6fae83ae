// The faults a hostile new user found (issue "Nothing lost, nothing hangs"): each reproduced here, each must
// end in a clear error or the right behaviour, never in lost files, a hang or a stack trace.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { buildApiServer } from '../../src/api/server.js';
import { loadInference } from '../../src/infer/load.js';
import { mergeSettings } from '../../src/infer/settings.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { buildWebui } from '../../src/webui/server.js';
import { makeTinyModelFolder, lmfEntry } from '../helpers.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-faults-'));
const model = path.join(work, 'tiny');
const adapter = path.join(work, 'adapter');

function lmf(...args: string[]) {
  return spawnSync(process.execPath, [...lmfEntry(), ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
}

/** A training YAML on the tiny model and the identity data; the `key: value` lines of `extra` override. */
function config(name: string, extra: string): string {
  const base =
    `model_name_or_path: ${model}\nstage: sft\ndataset: identity\ndataset_dir: data\ntemplate: llama2\ncutoff_len: 64\n` +
    'finetuning_type: lora\nlora_rank: 4\nlearning_rate: 1.0e-3\nlogging_steps: 1\nseed: 3\n';
  const lines = new Map<string, string>();
  for (const line of `${base}${extra}`.split('\n').filter(Boolean)) lines.set(line.split(':')[0], line);
  const file = path.join(work, `${name}.yaml`);
  writeFileSync(file, `${[...lines.values()].join('\n')}\n`);
  return file;
}

function assertCleanError(r: ReturnType<typeof lmf>, pattern: RegExp): void {
  assert.notEqual(r.status, 0, r.stderr);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /looks like a bug|^\s+at .*:\d+:\d+\)?$/m, r.stderr);
}

before(async () => {
  await makeTinyModelFolder(model);
  const r = lmf('train', config('adapter', `output_dir: ${adapter}\nmax_steps: 2\n`));
  assert.equal(r.status, 0, r.stderr);
});

after(() => rmSync(work, { recursive: true, force: true }));

test("1. export refuses a folder of the user's and the adapter's own folder; an earlier export is replaced", () => {
  const precious = path.join(work, 'users-folder');
  mkdirSync(precious);
  writeFileSync(path.join(precious, 'precious.txt'), 'precious');
  const exportYaml = (dir: string) => {
    const file = path.join(work, 'export.yaml');
    writeFileSync(
      file,
      `model_name_or_path: ${model}\nadapter_name_or_path: ${adapter}\ntemplate: llama2\nexport_dir: ${dir}\n`,
    );
    return file;
  };
  assertCleanError(
    lmf('export', exportYaml(precious)),
    /export_dir_not_empty.*not an LMFactory export \(precious\.txt\)/,
  );
  assert.equal(readFileSync(path.join(precious, 'precious.txt'), 'utf8'), 'precious');
  const adapterFiles = readdirSync(adapter).sort();
  assertCleanError(lmf('export', exportYaml(adapter)), /output_overlaps_input.*export_dir .* is adapter_name_or_path/);
  assert.deepEqual(readdirSync(adapter).sort(), adapterFiles);
  assertCleanError(
    lmf('export', exportYaml(path.join(model, 'merged'))),
    /export_dir .* lies inside model_name_or_path/,
  );
  const target = path.join(work, 'merged');
  for (let i = 0; i < 2; i++)
    assert.equal(lmf('export', exportYaml(target)).status, 0, 'a second export replaces the first');
  assert.equal(JSON.parse(readFileSync(path.join(target, 'run.json'), 'utf8')).command, 'export');
  assert.deepEqual(
    readdirSync(work).filter((n) => n.includes('.tmp-')),
    [],
  );
});

test('2. train refuses an output_dir that is, holds or lies inside the model or an adapter it reads, overwrite or not', () => {
  const weights = readFileSync(path.join(model, 'model.safetensors'));
  for (const [out, how] of [
    [model, 'is'],
    [path.join(model, 'out'), 'lies inside'],
    [work, 'contains'],
  ] as const) {
    const r = lmf(
      'train',
      config('overlap', `output_dir: ${out}\noverwrite_output_dir: true\nfinetuning_type: full\nmax_steps: 1\n`),
    );
    assertCleanError(r, new RegExp(`output_overlaps_input.*output_dir .* ${how} model_name_or_path`));
  }
  const r = lmf(
    'train',
    config(
      'overlap-adapter',
      `output_dir: ${adapter}\nadapter_name_or_path: ${adapter}\noverwrite_output_dir: true\nmax_steps: 1\n`,
    ),
  );
  assertCleanError(r, /output_dir .* is adapter_name_or_path/);
  assert.ok(readFileSync(path.join(model, 'model.safetensors')).equals(weights), 'the base model is untouched');
});

test("3. an earlier run's checkpoints never win: overwrite clears them, rotation keeps this run's, resume checks the config", () => {
  const out = path.join(work, 'rotation');
  assert.equal(lmf('train', config('earlier', `output_dir: ${out}\nmax_steps: 9\nsave_steps: 8\n`)).status, 0);
  assert.ok(existsSync(path.join(out, 'checkpoint-8')));
  mkdirSync(path.join(out, 'checkpoint-5.tmp-999999999'));
  const r = lmf(
    'train',
    config(
      'later',
      `output_dir: ${out}\noverwrite_output_dir: true\nmax_steps: 5\nsave_steps: 2\nsave_total_limit: 1\n`,
    ),
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /removed the earlier run's checkpoint-8/);
  assert.deepEqual(
    readdirSync(out).filter((n) => n.startsWith('checkpoint')),
    ['checkpoint-4'],
    "this run's newest checkpoint alone; the stale temporary folder is gone",
  );
  assert.equal(
    readFileSync(path.join(out, 'trainer_log.jsonl'), 'utf8').trim().split('\n').length,
    5,
    "the log holds this run's steps only",
  );
  const manifest = JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8'));
  assert.equal(manifest.command, 'train');
  assert.equal(manifest.config.max_steps, 5);
  assert.match(manifest.commit ?? '', /^[0-9a-f]{40}$/);
  assert.ok(
    manifest.data.some(
      (d: { file: string; sha256: string }) => d.file.endsWith('identity.json') && /^[0-9a-f]{64}$/.test(d.sha256),
    ),
  );
  assert.match(manifest.tokenizer_sha256, /^[0-9a-f]{64}$/);
  assert.equal(manifest.template.name, 'llama2');
  assert.match(manifest.kernels, /^(avx2|avx512|avx512bf16|neon|neonbf16)$/);
  const other = lmf(
    'train',
    config('later', `output_dir: ${out}\nresume_from_checkpoint: true\nmax_steps: 6\nlora_rank: 8\n`),
  );
  assertCleanError(other, /checkpoint_mismatch.*another lora_rank: lora_rank 4 there, 8 here/);
  const lr = lmf(
    'train',
    config('later', `output_dir: ${out}\nresume_from_checkpoint: true\nmax_steps: 6\nlearning_rate: 2.0e-3\n`),
  );
  assert.equal(lr.status, 0, lr.stderr);
  assert.match(lr.stderr, /notice: learning_rate changed on resume: 0\.001 -> 0\.002/);
  writeFileSync(path.join(out, 'checkpoint-4', 'trainer_state.json'), '{"global_step": 4, "log_hist');
  const corrupt = lmf(
    'train',
    config('later', `output_dir: ${out}\nresume_from_checkpoint: ${path.join(out, 'checkpoint-4')}\nmax_steps: 6\n`),
  );
  assertCleanError(corrupt, /bad_checkpoint.*checkpoint-4\/trainer_state\.json: trainer_state\.json cannot be read/);
});

/** A copy of the tiny model with a NaN written into one value of `tensor`. */
function poisonedModel(tensor: string): string {
  const dir = path.join(work, `nan-${tensor}`);
  cpSync(model, dir, { recursive: true });
  const file = path.join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8')) as Record<
    string,
    { data_offsets: [number, number] }
  >;
  bytes.writeFloatLE(Number.NaN, 8 + headerLen + header[tensor].data_offsets[0] + 4 * 7);
  writeFileSync(file, bytes);
  return dir;
}

test('4. NaN weights are refused at load, naming the tensor and file; a non-finite tensor is never written', () => {
  const tensor = 'model.layers.1.mlp.down_proj.weight';
  const dir = poisonedModel(tensor);
  const r = lmf(
    'train',
    config(
      'nan',
      `model_name_or_path: ${dir}\noutput_dir: ${path.join(work, 'nan-out')}\nfinetuning_type: full\nmax_steps: 1\n`,
    ),
  );
  assertCleanError(
    r,
    new RegExp(
      `non_finite_weights.*model\\.safetensors: tensor ${tensor.replaceAll('.', '\\.')}: 1 of \\d+ values are NaN or infinite`,
    ),
  );
  assertCleanError(lmf('generate', '--model', dir, '--template', 'llama2', 'hello'), /non_finite_weights/);
  const t = Tensor.zeros([4], 'f32');
  t.data[2] = Number.POSITIVE_INFINITY;
  assert.throws(
    () => writeSafetensors(path.join(work, 'inf.safetensors'), new Map([['w', { tensor: t, dtype: 'F32' }]])),
    /refusing to write a tensor with 1 NaN or infinite/,
  );
  assert.ok(!existsSync(path.join(work, 'inf.safetensors')));
  t.dispose();
});

/** A dataset folder with one alpaca file of `rows`. */
function dataset(name: string, rows: unknown[]): string {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'rows.json'), JSON.stringify(rows));
  writeFileSync(path.join(dir, 'dataset_info.json'), JSON.stringify({ rows: { file_name: 'rows.json' } }));
  return dir;
}

test('5. a 10 MB row is truncated to cutoff_len like any other (no stack overflow, no minutes of tokenising)', () => {
  const words = 'the committee met on monday to discuss the budget and ';
  const dir = dataset('long-row', [
    { instruction: words.repeat(Math.ceil(10e6 / words.length)), output: 'ok' },
    { instruction: 'hi', output: 'hello' },
  ]);
  const started = Date.now();
  const r = lmf('data', 'check', config('long', `dataset_dir: ${dir}\ndataset: rows\n`));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /examples kept: 2/);
  assert.match(r.stdout, /truncated to cutoff_len: 1/);
  assert.ok(Date.now() - started < 60_000, `took ${Date.now() - started} ms`);
});

test('6. train reports dropped rows per reason with file:row, and stops when more than max_invalid_ratio are invalid', () => {
  const good = { instruction: 'Who are you?', output: 'I am a model.' };
  const one = dataset('one-bad', [good, good, { instruction: 'no answer', output: '' }, good, good]);
  const r = lmf(
    'train',
    config(
      'one-bad',
      `dataset_dir: ${one}\ndataset: rows\noutput_dir: ${path.join(work, 'one-bad-out')}\nmax_steps: 1\n`,
    ),
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /data: 1 of 5 rows dropped as invalid/);
  assert.match(r.stderr, /1 × empty response \("output"\) \(.*rows\.json:3\)/);
  assert.match(r.stderr, /training sft\/lora: 4 examples/);
  const two = dataset('two-bad', [
    good,
    { instruction: '', output: 'x' },
    { instruction: 'no answer', output: '' },
    good,
    good,
  ]);
  const many = lmf(
    'train',
    config(
      'many-bad',
      `dataset_dir: ${two}\ndataset: rows\noutput_dir: ${path.join(work, 'many-bad-out')}\nmax_steps: 1\n`,
    ),
  );
  assertCleanError(
    many,
    /too_many_invalid_rows.*2 of 5 rows \(40\.0%\) are invalid, more than max_invalid_ratio 0\.2[\s\S]*hint: first: .*rows\.json:2/,
  );
});

test("7. an over-long prompt is refused fast while the server keeps answering; max_tokens follows OpenAI's rule", async () => {
  const m = loadInference({ model, template: 'llama2' });
  const app = buildApiServer(m, {
    modelName: 'tiny',
    settings: mergeSettings({ doSample: false, maxNewTokens: 4 }),
    maxActive: 2,
    maxQueued: 2,
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const post = (body: object) =>
    fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  try {
    const limit = m.model.config.maxPositions;
    // words the char bound cannot refuse (each token is short): the count in slices must
    const longText = 'budget monday committee '.repeat(Math.ceil((limit * 12) / 24));
    for (const content of [longText, 'x'.repeat(2_000_000)]) {
      const started = performance.now();
      const big = post({ messages: [{ role: 'user', content }] });
      const models = await fetch(`${url}/v1/models`);
      const modelsMs = performance.now() - started;
      const refused = await big;
      assert.equal(refused.status, 400);
      const e = (await refused.json()) as { error: { code: string; message: string } };
      assert.equal(e.error.code, 'context_length_exceeded');
      assert.match(
        e.error.message,
        new RegExp(`maximum context length is ${limit} tokens; the messages take at least \\d+`),
      );
      assert.equal(models.status, 200);
      assert.ok(
        modelsMs < 1000,
        `GET /v1/models took ${modelsMs.toFixed(0)} ms beside a ${content.length}-character request`,
      );
      assert.ok(performance.now() - started < 5000, 'refused promptly');
    }
    const tooMany = await post({ messages: [{ role: 'user', content: 'hi' }], max_tokens: limit });
    assert.equal(tooMany.status, 400);
    const e = (await tooMany.json()) as { error: { code: string; param: string; message: string } };
    assert.equal(e.error.code, 'context_length_exceeded');
    assert.equal(e.error.param, 'max_tokens');
    const prompt = Number(/\((\d+) in the messages/.exec(e.error.message)?.[1]);
    assert.match(
      e.error.message,
      new RegExp(
        `However, you requested ${limit + prompt} tokens \\(${prompt} in the messages, ${limit} in the completion\\)`,
      ),
    );
    const fits = await post({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
    assert.equal(fits.status, 200);
  } finally {
    await app.close();
    m.dispose();
  }
});

test('8. an output_dir the file system refuses (under /proc) is an error naming it, not an endless loop', () => {
  const started = Date.now();
  const r = lmf('train', config('proc', 'output_dir: /proc/lmf-cannot/out\nmax_steps: 1\n'));
  assertCleanError(
    r,
    /cannot_create\] \/proc\/lmf-cannot\/out: key output_dir: the folder \/proc\/lmf-cannot cannot be created/,
  );
  assert.ok(Date.now() - started < 30_000);
});

test('SIGTERM saves a checkpoint as SIGINT does', async () => {
  const file = config('sigterm', `output_dir: ${path.join(work, 'sigterm')}\nnum_train_epochs: 500\n`);
  const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [...lmfEntry(), 'train', file], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/step 2\//.test(stderr) && !child.killed) child.kill('SIGTERM');
    });
    child.on('exit', (code) => resolve({ code, stderr }));
  });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /interrupted by SIGTERM: checkpoint saved to .*checkpoint-\d+/);
});

test('environment errors name the file or port and the cause, never "a bug in LMFactory"', async () => {
  const busy = net.createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  const port = (busy.address() as net.AddressInfo).port;
  const serve = path.join(work, 'serve.yaml');
  writeFileSync(serve, `model_name_or_path: ${model}\ntemplate: llama2\n`);
  assertCleanError(
    lmf('api', serve, '--port', String(port)),
    new RegExp(`error \\[eaddrinuse\\] 127\\.0\\.0\\.1:${port}: the address is already in use`),
  );
  busy.close();
  const asFile = path.join(work, 'a-file');
  writeFileSync(asFile, 'not a model');
  assertCleanError(lmf('generate', '--model', asFile, 'hi'), /model_is_file.*a-file: model_name_or_path is a file/);
  const small = await makeTinyModelFolder(path.join(work, 'small-vocab'), { vocab_size: 1000 });
  assertCleanError(
    lmf(
      'train',
      config('small', `model_name_or_path: ${small}\noutput_dir: ${path.join(work, 'small-out')}\nmax_steps: 1\n`),
    ),
    /tokenizer_too_large.*tokenizer\.json: the tokenizer has token ids up to 31999, but the model has 1000 embedding rows/,
  );
});

test('an adapter trained on another base loads with a warning naming both', () => {
  const moved = path.join(work, 'adapter-other-base');
  cpSync(adapter, moved, { recursive: true });
  const cfgFile = path.join(moved, 'adapter_config.json');
  writeFileSync(
    cfgFile,
    JSON.stringify({
      ...JSON.parse(readFileSync(cfgFile, 'utf8')),
      base_model_name_or_path: 'meta-llama/Llama-3.2-1B',
    }),
  );
  const r = lmf(
    'generate',
    '--model',
    model,
    '--adapter',
    moved,
    '--template',
    'llama2',
    '--max-new-tokens',
    '2',
    'hi',
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stderr,
    /notice: the adapter .*adapter-other-base was trained on meta-llama\/Llama-3\.2-1B .* and is loaded onto .*tiny/,
  );
  const same = lmf(
    'generate',
    '--model',
    model,
    '--adapter',
    adapter,
    '--template',
    'llama2',
    '--max-new-tokens',
    '2',
    'hi',
  );
  assert.doesNotMatch(same.stderr, /notice: the adapter/);
});

test('webui: a null body or a malformed config.json is a 400 with the reason', async () => {
  const broken = path.join(work, 'broken-model');
  mkdirSync(broken);
  writeFileSync(path.join(broken, 'config.json'), '{"model_type": "llama",');
  const app = await buildWebui({ host: '127.0.0.1', port: 0, roots: [work], boardDir: path.join(work, 'board') });
  try {
    for (const url of ['/api/yaml', '/api/jobs', '/api/args', '/api/chat/load']) {
      const r = await app.inject({
        method: 'POST',
        url,
        headers: { host: '127.0.0.1:0', 'content-type': 'application/json' },
        payload: 'null',
      });
      assert.equal(r.statusCode, 400, `${url}: ${r.body}`);
      assert.match(r.json().error, /the request body must be a JSON object/);
    }
    const r = await app.inject({
      method: 'GET',
      url: `/api/model?path=${encodeURIComponent(broken)}`,
      headers: { host: '127.0.0.1:0' },
    });
    assert.equal(r.statusCode, 400, r.body);
    assert.match(r.json().error, /config\.json is not valid JSON/);
  } finally {
    await app.close();
  }
});
