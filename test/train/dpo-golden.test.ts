// DPO (sigmoid, beta 0.1) against PyTorch on every fixture, through the code of `lmf verify --golden
// golden_dpo.safetensors`: policy = base + the fixture LoRA adapter, reference = the same base with the adapter
// switched off (no second copy of the model). The four log-probability vectors within 1e-4, the loss within
// 1e-5, every LoRA gradient within 1e-3 of the tensor's largest value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { verifyGolden } from '../../src/verify/golden.js';
import { goldenFixtureDirs } from '../helpers.js';

for (const dir of goldenFixtureDirs) {
  test(`${path.basename(dir)}: DPO loss, the four log-probability vectors and every LoRA gradient match PyTorch`, () => {
    const report = verifyGolden({
      model: path.join(dir, 'model'),
      golden: path.join(dir, 'golden_dpo.safetensors'),
      adapter: path.join(dir, 'lora-adapter'),
      atol: 1e-4,
      gradRtol: 1e-3,
    });
    const names = report.tensors.map((t) => t.name);
    for (const n of ['reference_chosen_logps', 'reference_rejected_logps', 'policy_chosen_logps', 'loss'])
      assert.ok(names.includes(n), n);
    assert.equal(report.tensors.find((t) => t.name === 'loss')!.tolerance, 1e-5);
    assert.ok(names.filter((n) => n.startsWith('grad.')).length >= 8);
    const bad = report.tensors.filter((t) => !t.ok).map((t) => `${t.name}: ${t.max_abs_diff} (${t.max_rel_diff})`);
    assert.deepEqual(bad, []);
  });
}
