// LLaMA-Factory's rope_scaling key: its rule for the factor (from cutoff_len and the model's context), what it
// writes into config.json, and a training run that trains and saves the stretched model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { readModelConfig } from '../../src/models/config.js';
import { ropeInvFreq, stretchContext } from '../../src/models/rope.js';
import { train } from '../../src/train/trainer.js';
import { makeTinyModelFolder } from '../helpers.js';

const llama = { model_type: 'llama', max_position_embeddings: 2048 };

test('rope_scaling in training: factor ceil(cutoff_len / context), the context stretched, the scaling replaced', () => {
  const yarn = stretchContext(llama, 'yarn', 5000);
  assert.deepEqual(yarn.raw, {
    model_type: 'llama',
    max_position_embeddings: 6144,
    rope_scaling: { rope_type: 'yarn', factor: 3, original_max_position_embeddings: 2048 },
  });
  assert.match(yarn.message, /yarn scaling by 3, context 2048 → 6144/);
  assert.deepEqual(stretchContext(llama, 'linear', 4096).raw?.rope_scaling, { rope_type: 'linear', factor: 2 });
  assert.deepEqual(stretchContext(llama, 'llama3', 4096).raw?.rope_scaling, {
    rope_type: 'llama3',
    factor: 2,
    original_max_position_embeddings: 2048,
    low_freq_factor: 1,
    high_freq_factor: 4,
  });
  assert.match(stretchContext(llama, 'dynamic', 4096).message, /may not fine-tune well/);
});

test('rope_scaling: a cutoff within the context changes nothing; inference stretches by 2; the original context wins', () => {
  const fits = stretchContext(llama, 'yarn', 2048);
  assert.equal(fits.raw, null);
  assert.match(fits.message, /fits the model's context of 2048; no scaling/);
  assert.equal(stretchContext(llama, 'dynamic', null).raw?.max_position_embeddings, 4096);
  // a model already stretched (Qwen2.5's yarn block) counts from its original length
  const qwen = {
    model_type: 'qwen2',
    max_position_embeddings: 131072,
    rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 32768 },
  };
  assert.deepEqual(stretchContext(qwen, 'yarn', 40000).raw?.rope_scaling, {
    rope_type: 'yarn',
    factor: 2,
    original_max_position_embeddings: 32768,
  });
});

test("YaRN's frequencies: interpolated below the ramp, kept above it; its attention factor 0.1·ln(factor) + 1", () => {
  const spec = (scaling: object | null) => ({ theta: 10000, scaling, rotaryDim: 16 });
  const plain = ropeInvFreq(spec(null), { maxPositions: 256 }).inv;
  const yarn = ropeInvFreq(spec({ rope_type: 'yarn', factor: 4, original_max_position_embeddings: 64 }), {
    maxPositions: 256,
  });
  // original 64, dim 16: the ramp runs over pairs 0..3 (beta_fast 32 turns → 0, beta_slow 1 turn → ceil(2.02))
  assert.equal(yarn.inv[0], plain[0]);
  assert.ok(Math.abs(yarn.inv[1] - (plain[1] * 2) / 3 - plain[1] / 4 / 3) < 1e-7);
  for (let i = 3; i < 8; i++) assert.ok(Math.abs(yarn.inv[i] - plain[i] / 4) < 1e-9);
  assert.ok(Math.abs(yarn.attentionFactor - (0.1 * Math.log(4) + 1)) < 1e-12);
  // dynamic NTK: the default frequencies within the context, a larger base past it
  const dyn = spec({ rope_type: 'dynamic', factor: 2 });
  assert.deepEqual(ropeInvFreq(dyn, { maxPositions: 8 }, 8).inv, plain);
  const grown = ropeInvFreq(dyn, { maxPositions: 8 }, 16).inv;
  const base = 10000 * 3 ** (16 / 14);
  assert.ok(Math.abs(grown[1] - base ** (-2 / 16)) / grown[1] < 1e-6);
});

test('training with rope_scaling: yarn past the context trains and saves the stretched config.json', async () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-rope-'));
  const model = await makeTinyModelFolder(path.join(work, 'model'), { max_position_embeddings: 32 });
  const out = path.join(work, 'out');
  const c = loadConfig(null, {
    model_name_or_path: model,
    dataset: 'identity',
    dataset_dir: 'data',
    template: 'llama2',
    finetuning_type: 'full',
    rope_scaling: 'yarn',
    cutoff_len: 80,
    max_steps: 2,
    output_dir: out,
  });
  const { state } = await train(c, { print: () => undefined });
  assert.equal(state.global_step, 2);
  const saved = readModelConfig(out);
  assert.equal(saved.maxPositions, 96);
  assert.deepEqual(JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')).rope_scaling, {
    rope_type: 'yarn',
    factor: 3,
    original_max_position_embeddings: 32,
  });
});
