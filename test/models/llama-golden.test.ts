import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { shiftLabels, tokenWeights } from '../../src/models/decoder.js';
import { loadModel } from '../../src/models/registry.js';
import { backward } from '../../src/tensor/autograd.js';
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
