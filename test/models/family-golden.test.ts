// Each family's tiny fixture (reference/torch/golden_families.py) against PyTorch: logits and loss within 1e-4,
// every gradient of full fine-tuning and of LoRA on every projection within 1e-3 of the tensor's largest value;
// the KV-cache path against recomputation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { verifyGolden } from '../../src/verify/golden.js';
import { loadModel } from '../../src/models/registry.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { withScope } from '../../src/tensor/tensor.js';
import { familyFixtureDirs, maxAbsDiff } from '../helpers.js';

for (const dir of familyFixtureDirs) {
  const name = path.basename(dir);
  const model = path.join(dir, 'model');

  test(`${name}: every tensor of the folder is used`, () => {
    const loaded = loadModel(model);
    assert.deepEqual(loaded.unused, []);
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

for (const dir of familyFixtureDirs) {
  test(`${path.basename(dir)}: the KV-cache path (prefill, then one token at a time) equals recomputation`, () => {
    const { model } = loadModel(path.join(dir, 'model'));
    const ids = Array.from({ length: 20 }, (_, i) => 3 + ((i * 37) % 120)); // longer than every fixture's window
    const V = model.config.vocabSize;
    const cache = model.newCache();
    const stepwise: Float32Array[] = [];
    noGrad(() =>
      withScope(() => {
        stepwise.push(model.extend([ids.slice(0, 9)], [cache]).toArray());
        for (let t = 9; t < ids.length; t++) stepwise.push(model.extend([[ids[t]]], [cache]).toArray());
        const full = model.logits({ ids: Int32Array.from(ids), batch: 1, seq: ids.length }).data;
        stepwise.forEach((row, s) => {
          const t = 8 + s;
          assert.ok(maxAbsDiff(row, full.subarray(t * V, (t + 1) * V)) < 1e-4, `position ${t}`);
        });
      }),
    );
    model.dispose();
  });
}
