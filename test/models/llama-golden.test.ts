import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { shiftLabels, tokenWeights } from '../../src/models/decoder.js';
import { loadModel } from '../../src/models/registry.js';
import { native } from '../../src/native.js';
import { backward, noGrad } from '../../src/tensor/autograd.js';
import { withScope } from '../../src/tensor/tensor.js';
import { maxAbs, maxAbsDiff, tinyDir } from '../helpers.js';

for (const folder of ['model', 'model-sharded']) {
  test(`llama-tiny (${folder}): logits, loss and every gradient match PyTorch`, () => {
    const golden = SafetensorsFile.open(path.join(tinyDir, 'golden.safetensors'));
    const { model, unused } = loadModel(path.join(tinyDir, folder));
    assert.deepEqual(unused, []);
    for (const [, p] of model.namedParameters()) p.requiresGrad = true;
    const ids = Int32Array.from(golden.readNumbers('input_ids'));
    const labels = golden.readNumbers('labels');
    const input = { ids, batch: 2, seq: 16 };
    withScope(() => {
      const logits = model.logits(input);
      assert.ok(maxAbsDiff(logits.data, golden.readNumbers('logits')) < 1e-4);
      const targets = shiftLabels(labels, 2, 16);
      const loss = model.loss(input, targets, tokenWeights(targets));
      assert.ok(Math.abs(loss.data[0] - golden.readNumbers('loss')[0]) < 1e-4, `loss ${loss.data[0]}`);
      backward(loss);
    });
    for (const [name, p] of model.namedParameters()) {
      const want = golden.readNumbers(`grad.${name}`);
      const err = maxAbsDiff(p.grad!.data, want) / (maxAbs(want) + 1e-8);
      assert.ok(err < 1e-3, `${name}: relative error ${err}`);
    }
    model.dispose();
    golden.close();
  });
}

// A bf16 model's attention rounds its operands to bf16 where the CPU has bf16 dot products, as its matmuls do
// (test/native/kernels.test.ts checks the products themselves): every call of the kernels carries the model's dtype.
test('a bf16 model asks attention for bf16 products (training, prefill, decoding); an f32 model does not', () => {
  const { attentionForward, attentionBackward } = native;
  for (const dtype of ['f32', 'bf16'] as const) {
    const { model } = loadModel(path.join(tinyDir, 'model'), { dtype });
    const flags: boolean[] = [];
    native.attentionForward = (...args) => {
      flags.push(args[args.length - 1] as boolean);
      attentionForward(...args);
    };
    native.attentionBackward = (...args) => {
      flags.push(args[args.length - 1] as boolean);
      attentionBackward(...args);
    };
    try {
      for (const [, p] of model.namedParameters()) p.requiresGrad = true;
      const ids = Int32Array.from({ length: 16 }, (_, i) => 3 + i * 5);
      withScope(() => {
        const targets = shiftLabels(Array.from(ids), 1, 16);
        backward(model.loss({ ids, batch: 1, seq: 16 }, targets, tokenWeights(targets)));
      });
      noGrad(() =>
        withScope(() => {
          const caches = [model.newCache(), model.newCache()];
          const prompt = Array.from(ids.subarray(0, 9));
          model.extend([prompt, prompt], caches);
          model.extend([[ids[9]], [ids[10]]], caches);
        }),
      );
    } finally {
      native.attentionForward = attentionForward;
      native.attentionBackward = attentionBackward;
    }
    // per layer: training's forward and backward, two prompts, and a step decoding both (two sequences take the
    // kernels one by one; one alone would take the native layer stack, which calls no attention binding)
    assert.equal(flags.length, 6 * model.config.numLayers);
    assert.deepEqual(new Set(flags), new Set([dtype === 'bf16']));
    model.dispose();
  }
});
