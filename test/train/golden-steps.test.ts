// Five optimiser steps on each fixture's golden batch reproduce PyTorch's losses (1e-4) and pre-clip gradient
// norms (clip 1.0, AdamW betas 0.9/0.999, eps 1e-8, decoupled weight decay on matrices only), through the
// same code as `lmf verify --golden golden_train.safetensors`. Norms are held to 1e-3 relative: Adam's first
// updates are close to lr * sign(gradient), so f32 rounding differences of a few 1e-6 in near-zero gradient
// entries change whole updates; by step five that moves the norm by a few 1e-4 (Gemma's LoRA run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { verifyGolden } from '../../src/verify/golden.js';
import { goldenFixtureDirs } from '../helpers.js';

for (const dir of goldenFixtureDirs) {
  test(`${path.basename(dir)}: five full fine-tuning steps and five LoRA steps match PyTorch`, () => {
    const report = verifyGolden({
      model: path.join(dir, 'model'),
      golden: path.join(dir, 'golden_train.safetensors'),
      adapter: path.join(dir, 'lora-adapter'),
      atol: 1e-4,
      gradRtol: 1e-3,
    });
    assert.deepEqual(
      report.tensors.map((t) => t.name),
      ['full.losses', 'full.grad_norms', 'lora.losses', 'lora.grad_norms'],
    );
    const bad = report.tensors.filter((t) => !t.ok).map((t) => `${t.name}: ${t.max_abs_diff} (${t.max_rel_diff})`);
    assert.deepEqual(bad, []);
  });
}
