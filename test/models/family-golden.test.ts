// Each family's tiny fixture (reference/torch/golden_families.py) against PyTorch: logits and loss within 1e-4,
// every gradient of full fine-tuning and of LoRA on every projection within 1e-3 of the tensor's largest value;
// the KV-cache path against recomputation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LmfError } from '../../src/errors.js';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import { parseModelConfig } from '../../src/models/config.js';
import { verifyGolden } from '../../src/verify/golden.js';
import { loadModel } from '../../src/models/registry.js';
import { loadPeftAdapter } from '../../src/adapters/peft.js';
import { quantizeFor } from '../../src/models/quant/quantize.js';
import { attachLora } from '../../src/adapters/lora.js';
import { initModel } from '../../src/models/init.js';
import { Rng } from '../../src/tensor/random.js';
import type { CausalLM } from '../../src/models/registry.js';
import { native } from '../../src/native.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { persistent, Tensor, withScope } from '../../src/tensor/tensor.js';
import { familyFixtureDirs, maxAbsDiff } from '../helpers.js';

for (const dir of familyFixtureDirs) {
  const name = path.basename(dir);
  const model = path.join(dir, 'model');

  test(`${name}: every tensor of the folder is used (a released Qwen3.5's vision and mtp weights are not)`, () => {
    const loaded = loadModel(model);
    const skipped = name === 'qwen3_5-tiny' ? ['model.visual.patch_embed.proj.weight', 'mtp.fc.weight'] : [];
    assert.deepEqual(loaded.unused.sort(), skipped);
    loaded.model.dispose();
  });

  for (const [what, golden, adapter] of [
    ['full fine-tuning', 'golden.safetensors', undefined],
    ['LoRA on every projection', 'golden_lora.safetensors', path.join(dir, 'lora-adapter')],
  ] as const) {
    test(`${name} (${what}): logits, loss and every gradient match PyTorch`, () => {
      const report = verifyGolden({ model, golden: path.join(dir, golden), adapter, atol: 1e-4, gradRtol: 1e-3 });
      const bad = report.tensors.filter((t) => !t.ok).map((t) => `${t.name}: ${t.max_abs_diff} (${t.max_rel_diff})`);
      assert.deepEqual(bad, []);
      assert.ok(report.tensors.filter((t) => t.name.startsWith('grad.')).length >= (adapter ? 8 : 10));
    });
  }
}

// Dynamic NTK's frequencies follow the sequence's length: cached keys keep the rotation of the step that made
// them (as in Hugging Face), so only a one-call prefill equals recomputation; see the test after this one.
for (const dir of familyFixtureDirs.filter((d) => !d.endsWith('llama-dynamic-tiny'))) {
  test(`${path.basename(dir)}: the KV-cache path (prefill, then a few tokens at a time) equals recomputation`, () => {
    const { model } = loadModel(path.join(dir, 'model'));
    const ids = Array.from({ length: 20 }, (_, i) => 3 + ((i * 37) % 120)); // longer than every fixture's window
    const V = model.config.vocabSize;
    const cache = model.newCache();
    const stepwise: Float32Array[] = [];
    noGrad(() =>
      withScope(() => {
        // a prompt, then one token at a time, with one step of three tokens (a follow-up's) among them
        const ends = [9, 10, 11, 12, 15, 16, 17, 18, 19, 20];
        ends.forEach((end, s) => stepwise.push(model.extend([ids.slice(s ? ends[s - 1] : 0, end)], [cache]).toArray()));
        const full = model.logits({ ids: Int32Array.from(ids), batch: 1, seq: ids.length }).data;
        stepwise.forEach((row, s) => {
          const t = ends[s] - 1;
          assert.ok(maxAbsDiff(row, full.subarray(t * V, (t + 1) * V)) < 1e-4, `position ${t}`);
        });
      }),
    );
    model.dispose();
  });
}

// One sequence's decoding steps take the layer stack in one native call (src/models/native-stack.ts); two sequences
// at once take the kernels one by one. One token each, both read the weights through the same kernel (one or two
// rows) and must give the same bits, with or without a live LoRA adapter or a 4-bit or 8-bit base, which also makes a
// request's tokens the same whether or not the server batches it with another. Returns the native calls made.
function assertAloneMatchesBatched(model: CausalLM): number {
  const a = Array.from({ length: 20 }, (_, i) => 3 + ((i * 37) % 120));
  const b = Array.from({ length: 20 }, (_, i) => 5 + ((i * 53) % 110));
  const decodeLayers = native.decodeLayers;
  let nativeStacks = 0;
  native.decodeLayers = (...args) => {
    nativeStacks++;
    decodeLayers(...args);
  };
  try {
    noGrad(() =>
      withScope(() => {
        const alone = model.newCache();
        const pair = [model.newCache(), model.newCache()];
        model.extend([a.slice(0, 9)], [alone]);
        model.extend([a.slice(0, 9), b.slice(0, 9)], pair);
        for (let t = 9; t < a.length; t++) {
          const single = model.extend([[a[t]]], [alone]).toArray();
          const batched = model.extend([[a[t]], [b[t]]], pair).toArray();
          assert.equal(maxAbsDiff(single, batched.subarray(0, single.length)), 0, `position ${t}`);
        }
      }),
    );
  } finally {
    native.decodeLayers = decodeLayers;
  }
  assert.ok(nativeStacks === 0 || nativeStacks === a.length - 9);
  return nativeStacks;
}

for (const dir of familyFixtureDirs) {
  for (const [dtype, adapter] of [
    ['f32', false],
    ['bf16', false],
    ['bf16', true],
  ] as const) {
    const what = `${dtype}${adapter ? ', live LoRA adapter' : ''}`;
    test(`${path.basename(dir)} (${what}): a sequence decoded alone gives the bits it gets beside another`, () => {
      const { model } = loadModel(path.join(dir, 'model'), { dtype });
      if (adapter) loadPeftAdapter(model, path.join(dir, 'lora-adapter'));
      // Qwen3.5's linear-attention layers keep the layered path
      const linear = model.config.layerSpecs.some((s) => s.linearAttention);
      assert.equal(assertAloneMatchesBatched(model) > 0, !linear);
      model.dispose();
    });
  }
}

// The fixtures' sizes (96-wide MLPs and heads) are not whole 64-value blocks, so the QLoRA bases are made here.
for (const [bits, doubleQuantization] of [
  [4, false],
  [4, true],
  [8, false],
] as const) {
  const base = bits === 8 ? '8-bit' : `${doubleQuantization ? 'double-quantized ' : ''}NF4`;
  test(`a QLoRA base (${base}) with a live adapter decoded alone gives the bits it gets beside another`, () => {
    const config = parseModelConfig(
      {
        model_type: 'qwen2',
        vocab_size: 160,
        hidden_size: 64,
        intermediate_size: 128,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
      },
      'qlora-test',
    );
    const model = initModel(config, 'f32', 3, 0.05, quantizeFor(bits, 'nf4', doubleQuantization, 'f32'));
    const lora = persistent(() =>
      attachLora(model, { r: 4, alpha: 8, dropout: 0, targetModules: 'all', useRslora: false }, new Rng(4)),
    );
    const rng = new Rng(5);
    for (const layer of lora.values()) layer.B.data.set(Float32Array.from(layer.B.data, () => rng.normal() * 0.05));
    assert.ok(model.quantizedWeights().length > 0);
    assert.equal(assertAloneMatchesBatched(model) > 0, true);
    model.dispose();
  });
}

test('dynamic NTK: a prefill past max_position_embeddings equals recomputation, so does decoding within it', () => {
  const { model } = loadModel(
    path.join(
      familyFixtureDirs.find((d) => d.endsWith('llama-dynamic-tiny'))!,
      'model',
    ),
  );
  const ids = Array.from({ length: 14 }, (_, i) => 3 + ((i * 37) % 120)); // max_position_embeddings is 8
  const V = model.config.vocabSize;
  noGrad(() =>
    withScope(() => {
      const full = model.logits({ ids: Int32Array.from(ids), batch: 1, seq: ids.length }).data;
      const prefill = model.extend([ids], [model.newCache()]).toArray();
      assert.ok(maxAbsDiff(prefill, full.subarray((ids.length - 1) * V)) < 1e-4);
      // within the context the frequencies are the default ones: decoding step by step up to 8 tokens is exact
      const cache = model.newCache();
      const steps = [model.extend([ids.slice(0, 4)], [cache]).toArray()];
      for (let t = 4; t < 8; t++) steps.push(model.extend([[ids[t]]], [cache]).toArray());
      const short = model.logits({ ids: Int32Array.from(ids.slice(0, 8)), batch: 1, seq: 8 }).data;
      steps.forEach((row, s) => assert.ok(maxAbsDiff(row, short.subarray((3 + s) * V, (4 + s) * V)) < 1e-4));
    }),
  );
  model.dispose();
});

test('a Gemma3ForConditionalGeneration checkpoint loads its text tower (either prefix) and skips the vision weights', () => {
  const dir = familyFixtureDirs.find((d) => d.endsWith('gemma3-tiny'))!;
  const text = loadModel(path.join(dir, 'model')).model;
  const ids = Int32Array.from({ length: 12 }, (_, i) => 3 + i * 7);
  const want = noGrad(() => withScope(() => text.logits({ ids, batch: 1, seq: 12 }).toArray()));
  const textConfig = JSON.parse(readFileSync(path.join(dir, 'model', 'config.json'), 'utf8'));
  for (const prefix of ['model.language_model.', 'language_model.model.']) {
    const out = mkdtempSync(path.join(os.tmpdir(), 'lmf-gemma3-mm-'));
    try {
      const tensors = new Map<string, TensorToWrite>(
        text.namedParameters().map(([n, t]) => [n.replace(/^model\./, prefix), { tensor: t, dtype: 'F32' }]),
      );
      tensors.set('model.vision_tower.patch_embedding.weight', { tensor: Tensor.zeros([4, 4], 'f32'), dtype: 'F32' });
      writeSafetensors(path.join(out, 'model.safetensors'), tensors, { format: 'pt' });
      const { model_type: _, architectures: __, ...textKeys } = textConfig;
      writeFileSync(
        path.join(out, 'config.json'),
        JSON.stringify({
          model_type: 'gemma3',
          architectures: ['Gemma3ForConditionalGeneration'],
          text_config: textKeys,
          vision_config: { model_type: 'siglip_vision_model' },
        }),
      );
      const loaded = loadModel(out);
      assert.deepEqual(loaded.unused, ['model.vision_tower.patch_embedding.weight']);
      assert.equal(loaded.model.config.modelType, 'gemma3_text');
      const got = noGrad(() => withScope(() => loaded.model.logits({ ids, batch: 1, seq: 12 }).toArray()));
      assert.equal(maxAbsDiff(got, want), 0, prefix);
      loaded.model.dispose();
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }
  text.dispose();
});

test('model types: unknown ones list the supported, known unimplemented ones say why, an unsupported rope type is named', () => {
  const base = { vocab_size: 32, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2 };
  assert.throws(
    () => parseModelConfig({ ...base, model_type: 'falcon' }, 'c.json'),
    (e: LmfError) => /not supported/.test(e.message) && /qwen3, gemma3_text/.test(e.context.hint ?? ''),
  );
  assert.throws(() => parseModelConfig({ ...base, model_type: 'qwen3_moe' }, 'c.json'), /mixture-of-experts/);
  assert.throws(
    () =>
      parseModelConfig({ ...base, model_type: 'qwen3', rope_scaling: { rope_type: 'longrope', factor: 4 } }, 'c.json'),
    /rope_scaling type "longrope" is not supported/,
  );
});
