// Gradient checkpointing recomputes each layer in the backward pass: the loss and every gradient are the same
// as without it (full fine-tuning, and LoRA with dropout, whose masks must come out the same twice), on the
// LLaMA fixture and on Gemma 3's (four norms, windows, two rotary settings).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { attachLora } from '../../src/adapters/lora.js';
import { shiftLabels, tokenWeights } from '../../src/models/decoder.js';
import { loadModel } from '../../src/models/registry.js';
import { backward } from '../../src/tensor/autograd.js';
import { Rng } from '../../src/tensor/random.js';
import { withScope, type Tensor } from '../../src/tensor/tensor.js';
import { familyFixtureDirs, tinyDir } from '../helpers.js';

const ids = Int32Array.from({ length: 2 * 24 }, (_, i) => 3 + ((i * 29) % 120));
const targets = shiftLabels(ids, 2, 24);

function lossAndGrads(dir: string, method: 'full' | 'lora', checkpointing: boolean): [number, Float32Array[]] {
  const { model } = loadModel(dir);
  model.gradientCheckpointing = checkpointing;
  let params: Tensor[];
  if (method === 'lora') {
    const layers = attachLora(
      model,
      { r: 4, alpha: 8, dropout: 0.1, targetModules: ['all'], useRslora: false, useDora: false },
      new Rng(7),
    );
    params = [...layers.values()].flatMap((l) => [l.A, l.B]);
    for (const l of layers.values()) l.B.data.fill(0.01);
  } else {
    params = model.namedParameters().map(([, p]) => p);
    for (const p of params) p.requiresGrad = true;
  }
  let loss = 0;
  withScope(() => {
    const l = model.loss({ ids, batch: 2, seq: 24, dropoutStep: 3 }, targets, tokenWeights(targets));
    loss = l.data[0];
    backward(l);
  });
  const grads = params.map((p) => Float32Array.from(p.grad!.data));
  model.dispose();
  return [loss, grads];
}

for (const dir of [path.join(tinyDir, 'model'), path.join(familyFixtureDirs[1], 'model')]) {
  for (const method of ['full', 'lora'] as const) {
    test(`${path.basename(path.dirname(dir))} ${method}: the same loss and gradients with gradient checkpointing`, () => {
      const [plainLoss, plain] = lossAndGrads(dir, method, false);
      const [ckptLoss, ckpt] = lossAndGrads(dir, method, true);
      assert.equal(ckptLoss, plainLoss);
      plain.forEach((g, i) => assert.deepEqual(ckpt[i], g, `parameter ${i}`));
    });
  }
}
