// `lmf verify` and `lmf bench` as a user runs them: a child process, JSON on stdout, the exit code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { familyFixtureDirs, tinyDir, lmf } from '../helpers.js';

test('lmf verify passes on the single and the sharded folder, and with the PEFT adapter', () => {
  for (const args of [
    ['--model', path.join(tinyDir, 'model'), '--golden', path.join(tinyDir, 'golden.safetensors')],
    ['--model', path.join(tinyDir, 'model-sharded'), '--golden', path.join(tinyDir, 'golden.safetensors')],
    [
      '--model',
      path.join(tinyDir, 'model'),
      '--adapter',
      path.join(tinyDir, 'lora-adapter'),
      '--golden',
      path.join(tinyDir, 'golden_lora.safetensors'),
    ],
  ]) {
    const r = lmf('verify', ...args);
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.ok, true);
    const names = report.tensors.map((t: { name: string }) => t.name);
    assert.ok(names.includes('logits') && names.includes('loss'));
    assert.equal(names.filter((n: string) => n.startsWith('grad.')).length, args.includes('--adapter') ? 8 : 21);
  }
});

test('lmf verify replays the golden training steps and the DPO loss of a family fixture', () => {
  const dir = familyFixtureDirs.find((d) => d.endsWith('qwen3-tiny'))!;
  for (const [file, first] of [
    ['golden_train.safetensors', 'full.losses'],
    ['golden_dpo.safetensors', 'reference_chosen_logps'],
  ]) {
    const r = lmf(
      'verify',
      '--model',
      path.join(dir, 'model'),
      '--adapter',
      path.join(dir, 'lora-adapter'),
      '--golden',
      path.join(dir, file),
    );
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.ok, true);
    assert.equal(report.tensors[0].name, first);
  }
  // LoRA steps without the adapter they started from: one line saying what to pass
  const r = lmf('verify', '--model', path.join(dir, 'model'), '--golden', path.join(dir, 'golden_dpo.safetensors'));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /pass --adapter/);
});

test('lmf verify exits 1 and names the tensor when a tolerance is not met', () => {
  const r = lmf(
    'verify',
    '--model',
    path.join(tinyDir, 'model'),
    '--golden',
    path.join(tinyDir, 'golden.safetensors'),
    '--atol',
    '1e-12',
  );
  assert.equal(r.status, 1);
  assert.match(r.stderr, /out of tolerance: logits/);
});

test('lmf bench on a model folder prints one JSON line with throughput and memory', () => {
  const r = lmf(
    'bench',
    '--model',
    path.join(tinyDir, 'model'),
    '--mode',
    'full',
    '--dtype',
    'f32',
    '--seq',
    '32',
    '--steps',
    '2',
    '--warmup',
    '1',
  );
  assert.equal(r.status, 0, r.stderr);
  const line = JSON.parse(r.stdout.trim());
  for (const key of ['tokens_per_s', 'step_s', 'gflops', 'peak_gflops', 'peak_fraction', 'peak_rss_mb'])
    assert.ok(line[key] > 0, key);
  assert.ok(line.peak_fraction < 1, 'no step beats the arithmetic peak measured in the same run');
  assert.ok(line.last_loss < line.first_loss, 'three AdamW steps on one batch lower its loss');
  const peak = JSON.parse(lmf('bench', 'peak').stdout.trim());
  assert.ok(peak.f32_gflops > 0 && peak.threads > 0 && typeof peak.isa === 'string');
  // bf16 dot products exist on the avx512bf16 and neonbf16 paths only
  assert.equal(peak.bf16_gflops === null, !/bf16$/.test(peak.isa));
  const bad = lmf('bench', '--mode', 'sideways');
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /Allowed choices are lora, full, infer/);
});

// llama-tiny: hidden 64, 4 heads and 2 key/value heads of 16, MLP 160, 2 layers, vocabulary 256
test("lmf bench matmuls times every product of a step at the model's shapes, with bench's options either side", () => {
  // bench's options before the subcommand (--model, --dtype) and after it (--seq)
  const r = lmf(
    'bench',
    '--model',
    path.join(tinyDir, 'model'),
    '--dtype',
    'f32',
    'matmuls',
    '--seq',
    '24',
    '--reps',
    '1',
  );
  assert.equal(r.status, 0, r.stderr);
  const line = JSON.parse(r.stdout.trim());
  assert.equal(line.dtype, 'f32');
  assert.equal(line.rows, 24);
  assert.ok(line.peak_gflops > 0 && line.step_peak_fraction > 0);
  const shapes = Object.fromEntries(
    line.products.map((p: { product: string; m: number; n: number; k: number; per_step: number }) => [
      p.product,
      [p.m, p.n, p.k, p.per_step],
    ]),
  );
  assert.deepEqual(shapes, {
    'q_proj/o_proj forward': [24, 64, 64, 4],
    'q_proj/o_proj input_grad': [24, 64, 64, 4],
    'q_proj/o_proj weight_grad': [64, 64, 24, 4],
    'k_proj/v_proj forward': [24, 32, 64, 4],
    'k_proj/v_proj input_grad': [24, 64, 32, 4],
    'k_proj/v_proj weight_grad': [32, 64, 24, 4],
    'gate_proj/up_proj forward': [24, 160, 64, 4],
    'gate_proj/up_proj input_grad': [24, 64, 160, 4],
    'gate_proj/up_proj weight_grad': [160, 64, 24, 4],
    'down_proj forward': [24, 64, 160, 2],
    'down_proj input_grad': [24, 160, 64, 2],
    'down_proj weight_grad': [64, 160, 24, 2],
    'lm_head forward': [24, 256, 64, 1],
    'lm_head input_grad': [24, 64, 256, 1],
  });
  for (const p of line.products) assert.ok(p.ms > 0 && p.gflops > 0 && p.peak_fraction > 0, p.product);
});
