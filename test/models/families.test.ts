// Small Qwen2, Mistral and LLaMA variants (biases, sliding window, rope scaling, tied embeddings, F16 and
// sharded files), built here the way the PyTorch reference builds its fixtures: random weights written as
// a Hugging Face folder, loaded back, run forward and backward, and checked by directional derivatives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseModelConfig } from '../../src/models/config.js';
import { ropeInvFreq } from '../../src/models/rope.js';
import { initModel } from '../../src/models/init.js';
import { shiftLabels, tokenWeights, type DecoderModel } from '../../src/models/decoder.js';
import { GatedDeltaNet } from '../../src/models/gated-deltanet.js';
import { loadModel } from '../../src/models/registry.js';
import { saveModelFolder } from '../../src/models/save.js';
import { backward, noGrad } from '../../src/tensor/autograd.js';
import { Rng } from '../../src/tensor/random.js';
import { withScope, type Tensor } from '../../src/tensor/tensor.js';
import { maxAbsDiff } from '../helpers.js';

const base = {
  vocab_size: 96,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 128,
  bos_token_id: 1,
  eos_token_id: 2,
};

const families: Record<string, Record<string, unknown>> = {
  qwen2: { ...base, model_type: 'qwen2', rope_theta: 1000000, tie_word_embeddings: true, use_sliding_window: false },
  mistral: {
    ...base,
    model_type: 'mistral',
    rope_theta: 10000,
    sliding_window: 4096,
    head_dim: 16,
    num_attention_heads: 4,
  },
  'llama (llama3 rope scaling, biases)': {
    ...base,
    model_type: 'llama',
    rope_theta: 500000,
    attention_bias: true,
    mlp_bias: true,
    rope_scaling: {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64,
    },
  },
  'llama (linear rope scaling)': { ...base, model_type: 'llama', rope_scaling: { type: 'linear', factor: 2 } },
};

function lossOf(model: DecoderModel, ids: Int32Array, seq: number): Tensor<'f32'> {
  const targets = shiftLabels(ids, 2, seq);
  return model.loss({ ids, batch: 2, seq }, targets, tokenWeights(targets));
}

for (const [name, raw] of Object.entries(families)) {
  test(`${name}: saved, loaded back, forward and backward pass gradient checks`, () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lmf-family-'));
    try {
      const config = parseModelConfig(raw, 'test');
      const built = initModel(config, 'f32', 3, 0.2);
      // bias and norm values other than their init, so that their gradients are exercised
      for (const [pname, p] of built.namedParameters()) {
        if (p.shape.length === 1)
          p.data.forEach((_, i, a) => {
            a[i] = (pname.endsWith('bias') ? 0 : 1) + 0.1 * Math.sin(i + 1);
          });
      }
      saveModelFolder(built, dir, { dtype: 'F32', shardBytes: 40_000 });
      assert.ok(readdirSync(dir).includes('model.safetensors.index.json'));
      const { model, unused } = loadModel(dir);
      assert.deepEqual(unused, []);
      const seq = 20;
      const rng = new Rng(4);
      const ids = Int32Array.from({ length: 2 * seq }, () => rng.int(config.vocabSize));
      const input = { ids, batch: 2, seq };
      withScope(() =>
        assert.equal(maxAbsDiff(noGrad(() => built.logits(input)).data, noGrad(() => model.logits(input)).data), 0),
      );
      const attn = model.layers[0].proj.mixer;
      assert.ok(!(attn instanceof GatedDeltaNet) && 'q' in attn.input);
      if (config.qkvBias) assert.ok(attn.input.q.bias && attn.input.k.bias && attn.input.v.bias);
      if (config.modelType === 'qwen2') assert.equal(attn.o.bias, null);

      const params = model.namedParameters();
      for (const [, p] of params) p.requiresGrad = true;
      withScope(() => backward(lossOf(model, ids, seq)));
      const checked = params.filter(([n]) =>
        /embed|layers\.1\.self_attn\.[qk]_proj|layers\.0\.mlp\.down|norm\.weight$|bias/.test(n),
      );
      assert.ok(checked.length >= 4);
      for (const [pname, p] of checked) {
        // a unit direction, so the step stays small for every tensor size
        const raw = Float32Array.from({ length: p.size }, () => rng.normal());
        const norm = Math.sqrt(raw.reduce((a, v) => a + v * v, 0));
        const dir = raw.map((v) => v / norm);
        const orig = Float32Array.from(p.data as Float32Array);
        const at = (s: number) => {
          (p.data as Float32Array).set(orig.map((v, i) => v + s * dir[i]));
          return noGrad(() => withScope(() => lossOf(model, ids, seq).data[0]));
        };
        const eps = 1e-2;
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        (p.data as Float32Array).set(orig);
        let analytic = 0;
        p.grad!.data.forEach((g, i) => {
          analytic += g * dir[i];
        });
        assert.ok(
          Math.abs(numeric - analytic) <= 1e-2 * Math.abs(analytic) + 2e-4,
          `${pname}: finite difference ${numeric}, gradient ${analytic}`,
        );
      }
      model.dispose();
      built.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('rope frequencies follow Hugging Face for default, linear and llama3 scaling', () => {
  const c = (extra: Record<string, unknown>) => {
    const config = parseModelConfig({ ...base, model_type: 'llama', num_attention_heads: 2, ...extra }, 't');
    return ropeInvFreq(config.layerSpecs[0].rope!, config).inv;
  };
  const plain = c({ rope_theta: 10000 });
  assert.equal(plain.length, 8);
  assert.equal(plain[0], 1);
  assert.ok(Math.abs(plain[1] - 10000 ** (-2 / 16)) < 1e-7);
  const linear = c({ rope_theta: 10000, rope_scaling: { type: 'linear', factor: 4 } });
  linear.forEach((f, i) => assert.equal(f, Math.fround(plain[i] / 4)));
  // llama3: wavelengths below original/high_freq_factor kept, above original/low_freq_factor divided, blended between
  const l3 = c({
    rope_theta: 10000,
    rope_scaling: {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64,
    },
  });
  plain.forEach((f, i) => {
    const wl = (2 * Math.PI) / f;
    if (wl < 16) assert.equal(l3[i], f);
    else if (wl > 64) assert.equal(l3[i], Math.fround(f / 8));
    else assert.ok(l3[i] < f && l3[i] > f / 8);
  });
});

test('mistral: with a sliding window of 4, a one-layer model forgets token 0 from position 4 on', () => {
  const config = parseModelConfig({ ...families.mistral, sliding_window: 4, num_hidden_layers: 1 }, 't');
  const model = initModel(config, 'f32', 1, 0.3);
  const ids = Int32Array.from({ length: 10 }, (_, i) => 5 + i);
  const changed = Int32Array.from(ids);
  changed[0] = 50;
  const V = config.vocabSize;
  withScope(() => {
    const a = noGrad(() => model.logits({ ids, batch: 1, seq: 10 })).data;
    const b = noGrad(() => model.logits({ ids: changed, batch: 1, seq: 10 })).data;
    assert.ok(maxAbsDiff(a.subarray(3 * V, 4 * V), b.subarray(3 * V, 4 * V)) > 1e-4, 'position 3 still sees token 0');
    assert.equal(maxAbsDiff(a.subarray(4 * V), b.subarray(4 * V)), 0);
  });
  model.dispose();
});
