// PiSSA: the randomized SVD against a matrix whose decomposition is known, the initial adapter + residual
// reproducing the base, and a training run whose converted adapter is a plain LoRA for the original model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { attachLora } from '../../src/adapters/lora.js';
import { loadPeftAdapter } from '../../src/adapters/peft.js';
import { initPissa } from '../../src/adapters/pissa.js';
import { loadConfig } from '../../src/config/load.js';
import type { LmfError } from '../../src/errors.js';
import { loadInference } from '../../src/infer/load.js';
import { loadModel } from '../../src/models/registry.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { lowRankSvd, orthonormalize } from '../../src/tensor/low-rank-svd.js';
import { Rng } from '../../src/tensor/random.js';
import { withScope } from '../../src/tensor/tensor.js';
import { train } from '../../src/train/trainer.js';
import { makeTinyModelFolder, maxAbsDiff, tinyDir } from '../helpers.js';

/** W = U diag(S) Vᵀ with random orthonormal U [m, k], V [n, k]; `keep` leading terms only (its principal part). */
function knownMatrix(m: number, n: number, S: number[], seed: number, keep = S.length): Float32Array {
  const rng = new Rng(seed);
  const k = S.length;
  const U = Float32Array.from({ length: m * k }, () => rng.normal());
  const V = Float32Array.from({ length: n * k }, () => rng.normal());
  orthonormalize(U, m, k);
  orthonormalize(V, n, k);
  const w = new Float32Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) for (let c = 0; c < keep; c++) w[i * n + j] += U[i * k + c] * S[c] * V[j * k + c];
  return w;
}

function principalPart(svd: ReturnType<typeof lowRankSvd>, m: number, n: number, r: number): Float32Array {
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++)
      for (let c = 0; c < r; c++) out[i * n + j] += svd.U[i * r + c] * svd.S[c] * svd.Vh[c * n + j];
  return out;
}

test('randomized SVD: the exact mode and 16 power iterations find the leading singular triplets', () => {
  const S = [9, 7, 5.5, 4, 1, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1];
  const [m, n, r] = [40, 64, 4];
  const w = knownMatrix(m, n, S, 7);
  const truth = knownMatrix(m, n, S, 7, r);
  for (const iterations of [null, 16]) {
    const svd = lowRankSvd(w, m, n, r, iterations, new Rng(1));
    svd.S.forEach((s, i) => assert.ok(Math.abs(s - S[i]) < 1e-4 * S[0], `${iterations}: σ${i} ${s} vs ${S[i]}`));
    assert.ok(maxAbsDiff(principalPart(svd, m, n, r), truth) < 1e-4, `${iterations}: U S Vh`);
    // orthonormal factors
    for (let a = 0; a < r; a++) {
      let norm = 0;
      for (let j = 0; j < n; j++) norm += svd.Vh[a * n + j] ** 2;
      assert.ok(Math.abs(norm - 1) < 1e-5);
    }
  }
});

test('PiSSA init: adapter + residual reproduce the base model’s logits; the adapter holds the principal part', () => {
  const { model } = loadModel(path.join(tinyDir, 'model'));
  const ids = Int32Array.from({ length: 12 }, (_, i) => 3 + ((i * 29) % 200));
  const input = { ids, batch: 1, seq: 12 };
  const before = noGrad(() => withScope(() => model.logits(input).toArray()));
  const weight = model.layers[0].projections().find(([n]) => n.endsWith('q_proj'))![1].weight;
  const original = weight.toF32().data.slice();
  const settings = { r: 4, alpha: 8, dropout: 0, targetModules: 'all', useRslora: false };
  const layers = attachLora(model, settings, new Rng(0));
  initPissa(model, layers, 16);
  const after = noGrad(() => withScope(() => model.logits(input).toArray()));
  assert.ok(maxAbsDiff(before, after) < 1e-4, `logits moved by ${maxAbsDiff(before, after)}`);
  const q = layers.get('model.layers.0.self_attn.q_proj')!;
  assert.ok(q.B.data.some((v) => v !== 0) && q.A.data.some((v) => v !== 0));
  // residual + scale·B·A is the original weight
  const delta = q.mergedDelta();
  const rebuilt = weight.toF32().data.map((v, i) => v + delta.data[i]);
  assert.ok(maxAbsDiff(rebuilt, original) < 1e-6);
  model.dispose();
});

test('training with pissa_init + pissa_convert: pissa_init/, pissa_converted/ (plain LoRA, rank 2r) and the adapter all load', async () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-pissa-'));
  const base = await makeTinyModelFolder(path.join(work, 'model'));
  const out = path.join(work, 'out');
  const c = loadConfig(null, {
    model_name_or_path: base,
    dataset: 'identity',
    dataset_dir: 'data',
    template: 'llama2',
    lora_rank: 8,
    pissa_init: true,
    pissa_iter: 16,
    pissa_convert: true,
    learning_rate: 1e-2,
    cutoff_len: 64,
    max_steps: 3,
    output_dir: out,
  });
  await train(c, { print: () => undefined });
  const config = (dir: string) => JSON.parse(readFileSync(path.join(out, dir, 'adapter_config.json'), 'utf8'));
  assert.equal(config('.').init_lora_weights, 'pissa_niter_16');
  assert.equal(config('pissa_init').init_lora_weights, true);
  const converted = config('pissa_converted');
  assert.deepEqual([converted.r, converted.lora_alpha, converted.init_lora_weights], [16, 32, true]);

  const ids = Int32Array.from({ length: 10 }, (_, i) => 5 + i * 11);
  const logits = (adapters: string[]) => {
    const m = loadInference({ model: base, adapters });
    const l = noGrad(() => withScope(() => m.model.logits({ ids, batch: 1, seq: 10 }).toArray()));
    m.model.dispose();
    return l;
  };
  const original = logits([]);
  const viaResidual = logits([out]); // the loader recomputes the residual, as PEFT does
  const viaConverted = logits([path.join(out, 'pissa_converted')]);
  const viaStart = logits([path.join(out, 'pissa_init')]);
  assert.ok(maxAbsDiff(original, viaResidual) > 1e-3, 'training changed the model');
  assert.ok(maxAbsDiff(viaResidual, viaConverted) < 1e-4, `converted: ${maxAbsDiff(viaResidual, viaConverted)}`);
  // pissa_init/ holds the principal part itself (init true): on the original base it doubles it, as in PEFT
  assert.ok(maxAbsDiff(original, viaStart) > 1e-3);
});

test('PiSSA refusals: stages whose reference is the base, non-LoRA methods, adapters that rewrite the base', async () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-pissa-refuse-'));
  const base = await makeTinyModelFolder(path.join(work, 'model'));
  const common = { model_name_or_path: base, dataset_dir: 'data', template: 'llama2', max_steps: 1, pissa_init: true };
  for (const [extra, pattern] of [
    [{ stage: 'dpo', dataset: 'dpo_demo', output_dir: path.join(work, 'a') }, /reference model is the base/],
    [{ finetuning_type: 'freeze', dataset: 'identity', output_dir: path.join(work, 'b') }, /only valid for LoRA/],
  ] as const) {
    await assert.rejects(train(loadConfig(null, { ...common, ...extra }), { print: () => undefined }), (e: LmfError) =>
      pattern.test(e.message),
    );
  }
  const adapter = path.join(work, 'olora');
  const { model } = loadModel(base);
  const layers = attachLora(model, { r: 2, alpha: 4, dropout: 0, targetModules: 'all', useRslora: false }, new Rng(0));
  const { savePeftAdapter } = await import('../../src/adapters/peft.js');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(adapter);
  savePeftAdapter(adapter, layers, { r: 2, alpha: 4, dropout: 0, targetModules: 'all', useRslora: false }, base);
  const file = path.join(adapter, 'adapter_config.json');
  writeFileSync(file, readFileSync(file, 'utf8').replace('"init_lora_weights": true', '"init_lora_weights": "olora"'));
  assert.throws(() => loadPeftAdapter(model, adapter), /init_lora_weights "olora" is not supported/);
  model.dispose();
});
