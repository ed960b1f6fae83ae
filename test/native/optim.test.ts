// The optimiser kernels against plain double-precision references, on tensors whose sizes cross the kernels'
// 65,536-element pieces and end off a vector boundary: the squared gradient norm and PyTorch's AdamW update.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { native } from '../../src/native.js';
import { Rng } from '../../src/tensor/random.js';

const sizes = [70_001, 13, 65_536];
const filled = (rng: Rng, scale: number) =>
  sizes.map((n) => Float32Array.from({ length: n }, () => rng.normal() * scale));

test('sumSquares is the sum of every element squared, over every tensor', () => {
  const grads = filled(new Rng(1), 0.3);
  let want = 0;
  for (const g of grads) for (const x of g) want += x * x;
  assert.ok(Math.abs(native.sumSquares(grads) - want) <= 1e-12 * want, `${native.sumSquares(grads)} vs ${want}`);
});

test("adamw follows PyTorch's update: moments, bias corrections, decoupled decay, gradient scale", () => {
  const rng = new Rng(2);
  const params = filled(rng, 1);
  const grads = filled(rng, 0.1);
  const m = filled(rng, 0.01);
  const v = sizes.map((n) => Float32Array.from({ length: n }, () => Math.abs(rng.normal()) * 1e-3));
  const lr = Float64Array.from([1e-3, 2e-3, 5e-4]);
  const wd = Float64Array.from([0.1, 0, 0.01]);
  const [b1, b2, eps, step, scale] = [0.9, 0.999, 1e-8, 3, 0.5];
  // the reference in double, from copies of the inputs
  const want = params.map((p, t) =>
    Array.from(p, (x, i) => {
      const g = grads[t][i] * scale;
      const mi = b1 * m[t][i] + (1 - b1) * g;
      const vi = b2 * v[t][i] + (1 - b2) * g * g;
      const denom = Math.sqrt(vi) / Math.sqrt(1 - b2 ** step) + eps;
      return x * (1 - lr[t] * wd[t]) - (lr[t] / (1 - b1 ** step)) * (mi / denom);
    }),
  );
  native.adamw(params, grads, m, v, lr, wd, b1, b2, eps, step, scale);
  // f32 arithmetic: within a few units in the last place of the parameter (|p| <= ~5 here, an ulp ~5e-7)
  params.forEach((p, t) => {
    let worst = 0;
    p.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - want[t][i]))));
    assert.ok(worst < 2e-6, `tensor ${t}: error ${worst}`);
  });
});
