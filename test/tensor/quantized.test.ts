// The quantized projection (QLoRA's base): forward equals x·Wᵀ on the dequantised weight (across several panels),
// and the backward of quantLinear and of loraLinear on a quantized base agrees with finite differences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dynamicMap, fp4Table, nf4Table, quantize4bit, quantizeAbsmax } from '../../src/models/quant/bnb.js';
import { backward } from '../../src/tensor/autograd.js';
import { loraLinear } from '../../src/tensor/ops/index.js';
import { QuantizedMatrix, quantLinear } from '../../src/tensor/quantized.js';
import { Rng } from '../../src/tensor/random.js';
import { Tensor, withScope } from '../../src/tensor/tensor.js';
import { maxOf } from '../../src/util/arrays.js';
import { maxAbsDiff } from '../helpers.js';

const rng = new Rng(5);
const randn = (n: number, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);

function quantized(N: number, K: number, type: 'nf4' | 'fp4', double = false): { q: QuantizedMatrix; w: Float32Array } {
  const blocks = quantize4bit(randn(N * K, 0.1), type);
  const table = type === 'nf4' ? nf4Table : fp4Table;
  const absmax = double ? { ...quantizeAbsmax(blocks.absmax), map: dynamicMap } : blocks.absmax;
  const q = new QuantizedMatrix([N, K], { kind: type, packed: blocks.packed, absmax, blocksize: 64, table }, 'f32');
  const w = new Float32Array(N * K);
  q.dequantizeRows(0, N, w);
  return { q, w };
}

/** x·Wᵀ + b in f64 */
function projected(x: Float32Array, w: Float32Array, b: Float32Array, rows: number, N: number, K: number) {
  const out = new Float64Array(rows * N);
  for (let r = 0; r < rows; r++)
    for (let n = 0; n < N; n++) {
      let s = b[n];
      for (let k = 0; k < K; k++) s += x[r * K + k] * w[n * K + k];
      out[r * N + n] = s;
    }
  return out;
}

test('quantLinear equals x·Wᵀ + b on the dequantised weight, over several panels', () => {
  const [rows, N, K] = [5, 3000, 400]; // 4 MB panels of 400 f32 columns hold 2621 rows: two panels
  const { q, w } = quantized(N, K, 'nf4');
  assert.ok(q.panelRows() < N);
  const x = randn(rows * K);
  const b = randn(N);
  withScope(() => {
    const y = quantLinear(Tensor.from(x, [rows, K], 'f32'), q, Tensor.from(b, [N], 'f32'));
    assert.ok(maxAbsDiff(y.data, projected(x, w, b, rows, N, K)) < 1e-3);
  });
});

test('decoding rows (1 to 4) read 4-bit codes in place and equal x·Wᵀ + b on the dequantised weight', () => {
  const [N, K] = [70, 320];
  for (const [type, double] of [
    ['nf4', false],
    ['fp4', false],
    ['nf4', true], // the double-quantized absmax expanded row by row in the kernel
  ] as const) {
    const { q, w } = quantized(N, K, type, double);
    const b = randn(N);
    for (let rows = 1; rows <= 4; rows++) {
      const x = randn(rows * K);
      withScope(() => {
        const y = quantLinear(Tensor.from(x, [rows, K], 'f32'), q, Tensor.from(b, [N], 'f32'));
        assert.ok(
          maxAbsDiff(y.data, projected(x, w, b, rows, N, K)) < 1e-4,
          `${type}${double ? ' (double)' : ''}, ${rows} rows`,
        );
      });
    }
  }
});

test('the backward of quantLinear and of loraLinear on a quantized base matches finite differences', () => {
  const [rows, N, K, r] = [3, 40, 64, 2];
  const { q } = quantized(N, K, 'fp4');
  const x0 = randn(rows * K);
  const A0 = randn(r * K, 0.1);
  const B0 = randn(N * r, 0.1);
  const probe = randn(rows * N);
  const loss = (xs: Float32Array, As: Float32Array, Bs: Float32Array, grads: boolean) =>
    withScope(() => {
      const x = Tensor.from(xs, [rows, K], 'f32');
      const A = Tensor.from(As, [r, K], 'f32');
      const B = Tensor.from(Bs, [N, r], 'f32');
      for (const t of [x, A, B]) t.requiresGrad = grads;
      const y = loraLinear(x, x, q, null, A, B, 2);
      const base = quantLinear(x, q);
      let s = 0;
      for (let i = 0; i < y.size; i++) s += (y.data[i] + base.data[i]) * probe[i];
      if (!grads) return { s, gx: null, gA: null };
      // d/dy of sum((y + base) * probe) is probe for both outputs
      backward(y, Tensor.from(probe, y.shape, 'f32'));
      backward(base, Tensor.from(probe, base.shape, 'f32'));
      return { s, gx: x.grad!.data.slice(), gA: A.grad!.data.slice() };
    });
  const { gx, gA } = loss(x0, A0, B0, true);
  const eps = 1e-2;
  for (const [name, v, g] of [
    ['x', x0, gx!],
    ['A', A0, gA!],
  ] as const) {
    for (const i of [0, 7, v.length - 1]) {
      const up = v.slice();
      const down = v.slice();
      up[i] += eps;
      down[i] -= eps;
      const args = (t: Float32Array) =>
        (name === 'x' ? [t, A0, B0] : [x0, t, B0]) as [Float32Array, Float32Array, Float32Array];
      const numeric = (loss(...args(up), false).s - loss(...args(down), false).s) / (2 * eps);
      assert.ok(
        Math.abs(numeric - g[i]) < 2e-2 * Math.max(1, Math.abs(numeric)),
        `${name}[${i}]: ${g[i]} vs ${numeric}`,
      );
    }
  }
});

test('DoRA on a quantized base equals DoRA on the same weights dequantised: output and every gradient', async () => {
  const { LoraLayer } = await import('../../src/adapters/lora.js');
  const { Linear } = await import('../../src/nn/linear.js');
  const [rows, N, K, r] = [6, 40, 128, 4];
  const { q, w } = quantized(N, K, 'nf4');
  const x0 = randn(rows * K);
  const [A0, B0] = [randn(r * K, 0.1), randn(N * r, 0.1)];
  const probe = randn(rows * N);
  const run = (base: Tensor | QuantizedMatrix) =>
    withScope(() => {
      const layer = new Linear(base, null);
      const [A, B] = [Tensor.from(A0, [r, K], 'f32'), Tensor.from(B0, [N, r], 'f32')];
      const dora = new LoraLayer(A, B, 2, 0, 0, Tensor.zeros([N], 'f32'));
      dora.magnitude!.data.set(dora.adaptedRowNorms(base));
      const x = Tensor.from(x0, [rows, K], 'f32');
      for (const t of [x, A, B, dora.magnitude!]) t.requiresGrad = true;
      const y = dora.forward(x, layer);
      backward(y, Tensor.from(probe, y.shape, 'f32'));
      return [y, x.grad!, A.grad!, B.grad!, dora.magnitude!.grad!].map((t) => t.data.slice());
    });
  const quant = run(q);
  const dense = run(Tensor.from(w, [N, K], 'f32'));
  ['y', 'dx', 'dA', 'dB', 'dm'].forEach((name, i) => {
    const scale = maxOf(dense[i].map(Math.abs));
    assert.ok(maxAbsDiff(quant[i], dense[i]) <= 1e-5 * scale, `${name}: ${maxAbsDiff(quant[i], dense[i])} of ${scale}`);
  });
});
