import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backward, noGrad } from '../../src/tensor/autograd.js';
import { attention, attentionReference } from '../../src/tensor/ops/attention.js';
import { gatedDelta, gatedDeltaReference } from '../../src/tensor/ops/gated-delta.js';
import { opSpecs } from '../../src/tensor/ops/index.js';
import type { OpSpec } from '../../src/tensor/ops/spec.js';
import { native, NativeDType } from '../../src/native.js';
import { Rng } from '../../src/tensor/random.js';
import { Tensor, withScope } from '../../src/tensor/tensor.js';

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function makeInputs(spec: OpSpec, rng: Rng): Tensor<'f32'>[] {
  return spec.inputs.map((shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const t = Tensor.from(
      Array.from({ length: n }, () => rng.normal() * 0.8),
      shape,
      'f32',
    );
    t.requiresGrad = true;
    return t;
  });
}

function projected(out: Tensor<'f32'>, r: Float64Array): number {
  let s = 0;
  for (let i = 0; i < r.length; i++) s += r[i] * out.data[i];
  return s;
}

for (const [name, spec] of Object.entries(opSpecs)) {
  test(`${name}: forward matches the plain reference`, () =>
    withScope(() => {
      const inputs = makeInputs(spec, new Rng(1));
      const out = noGrad(() => spec.apply(inputs));
      const ref = spec.reference(inputs.map((t) => Float64Array.from(t.data)));
      assert.equal(out.size, ref.length);
      const err = maxAbs(ref.map((v, i) => v - out.data[i]));
      assert.ok(err <= 1e-5 * (1 + maxAbs(ref)), `${name}: max error ${err}`);
    }));

  test(`${name}: backward matches central finite differences`, () =>
    withScope(() => {
      const rng = new Rng(2);
      const inputs = makeInputs(spec, rng);
      const out = spec.apply(inputs);
      const r = Float64Array.from({ length: out.size }, () => rng.normal());
      backward(out, Tensor.from(r, out.shape, 'f32'));
      const eps = 1e-2;
      inputs.forEach((input, k) => {
        const analytic = input.grad!.toArray();
        const numeric = new Float64Array(input.size);
        for (let i = 0; i < input.size; i++) {
          const orig = input.data[i];
          input.data[i] = orig + eps;
          const plus = noGrad(() => projected(spec.apply(inputs), r));
          input.data[i] = orig - eps;
          const minus = noGrad(() => projected(spec.apply(inputs), r));
          input.data[i] = orig;
          numeric[i] = (plus - minus) / (2 * eps);
        }
        const err = maxAbs(numeric.map((v, i) => v - analytic[i]));
        assert.ok(
          err <= 1e-2 * (maxAbs(numeric) + 1e-3),
          `${name} input ${k}: max error ${err} vs scale ${maxAbs(numeric)}`,
        );
      });
      inputs.forEach((t) => t.dispose());
    }));
}

// The examples above fit in one 64×64 tile; these shapes span several tiles of the native attention kernel
// (partial blocks, causal edges, packed segments), checked by directional derivatives.
test('attention: multi-tile forward and backward', () =>
  withScope(() => {
    const rng = new Rng(3);
    const shape = { batch: 2, seq: 150, heads: 4, kvHeads: 2, headDim: 16 };
    const N = shape.batch * shape.seq;
    const segs = Array.from({ length: N }, (_, i) => (i % shape.seq < 70 ? 1 : 2));
    const segments = Tensor.from(segs, [N], 'i32');
    const mk = (cols: number) => {
      const t = Tensor.from(
        Array.from({ length: N * cols }, () => rng.normal()),
        [N, cols],
        'f32',
      );
      t.requiresGrad = true;
      return t;
    };
    const q = mk(64),
      k = mk(32),
      v = mk(32);
    const out = attention(q, k, v, { ...shape, segments });
    const ref = attentionReference(
      Float64Array.from(q.data),
      Float64Array.from(k.data),
      Float64Array.from(v.data),
      shape,
      segs,
    );
    assert.ok(maxAbs(ref.map((x, i) => x - out.data[i])) < 1e-5);
    const r = Float64Array.from({ length: out.size }, () => rng.normal());
    backward(out, Tensor.from(r, out.shape, 'f32'));
    const eps = 1e-3;
    for (const x of [q, k, v]) {
      const dir = Float32Array.from({ length: x.size }, () => rng.normal());
      const orig = Float32Array.from(x.data);
      const at = (s: number) => {
        for (let i = 0; i < x.size; i++) x.data[i] = orig[i] + s * dir[i];
        return noGrad(() => projected(attention(q, k, v, { ...shape, segments }), r));
      };
      const numeric = (at(eps) - at(-eps)) / (2 * eps);
      x.data.set(orig);
      let analytic = 0;
      const g = x.grad!.data;
      for (let i = 0; i < x.size; i++) analytic += g[i] * dir[i];
      assert.ok(
        Math.abs(numeric - analytic) <= 2e-3 * Math.abs(analytic) + 1e-3,
        `directional ${numeric} vs ${analytic}`,
      );
    }
  }));

// A bf16 model's attention: where our kernels have bf16 dot products (the avx512bf16 path) its products read the
// operands rounded to bf16, close to f32 and not equal to it; elsewhere (bf16 matmuls widen there) the f32 bits.
test('attention with bf16 products: rounded where the CPU has bf16 dot products, the f32 bits elsewhere', () =>
  withScope(() => {
    const rng = new Rng(8);
    const shape = { batch: 1, seq: 100, heads: 4, kvHeads: 2, headDim: 32 };
    const inputs = [128, 64, 64].map((cols) => Float32Array.from({ length: 100 * cols }, () => rng.normal()));
    const r = Tensor.from(
      Array.from({ length: 100 * 128 }, () => rng.normal()),
      [100, 128],
      'f32',
    );
    const run = (bf16: boolean) => {
      const [q, k, v] = inputs.map((x) => {
        const t = Tensor.from(x, [100, x.length / 100], 'f32');
        t.requiresGrad = true;
        return t;
      });
      const out = attention(q, k, v, { ...shape, bf16 });
      backward(out, r);
      return [out, q.grad!, k.grad!, v.grad!].map((t) => Float32Array.from(t.data));
    };
    const f32 = run(false);
    const b16 = run(true);
    if (native.info().isa !== 'avx512bf16') {
      assert.deepEqual(b16, f32);
      return;
    }
    // every operand rounded to bf16: the kernel tests see up to 1e-2 of the largest value against f32
    f32.forEach((want, i) => {
      const err = maxAbs(want.map((x, j) => x - b16[i][j])) / maxAbs(want);
      assert.ok(err > 0 && err < 3e-2, `output ${i}: relative error ${err}`);
    });
  }));

// The spec's example has narrow heads (2 values) over two chunks; these are 40 values wide, over several 64-token
// chunks, with packed boundaries at a chunk's start and at a row's last token, checked by directional derivatives.
test('gatedDelta: wide heads over several chunks, forward and backward', () =>
  withScope(() => {
    const rng = new Rng(4);
    const shape = { batch: 2, seq: 150, keyHeads: 2, valueHeads: 4, keyDim: 8, valueDim: 40 };
    const N = shape.batch * shape.seq;
    const segs = Array.from({ length: N }, (_, i) =>
      i < shape.seq ? (i < 64 ? 1 : 2) : i % shape.seq < shape.seq - 1 ? 1 : 3,
    );
    const run = (xs: Tensor<'f32'>[]) =>
      gatedDelta(xs[0], xs[1], xs[2], xs[3], xs[4], { ...shape, segments: Tensor.from(segs, [N], 'i32') });
    const channels = 2 * 2 * 8 + 4 * 40;
    const inputs = [[N, channels], [N, 4], [N, 4], [4], [4]].map(([r, c]) => {
      const t = Tensor.from(
        Array.from({ length: r * (c ?? 1) }, () => rng.normal() * 0.8),
        c ? [r, c] : [r],
        'f32',
      );
      t.requiresGrad = true;
      return t;
    });
    const out = run(inputs);
    const ref = gatedDeltaReference(
      inputs.map((t) => Float64Array.from(t.data)),
      { ...shape, segments: segs },
    );
    assert.ok(maxAbs(ref.map((x, i) => x - out.data[i])) < 1e-4 * (1 + maxAbs(ref)));
    const r = Float64Array.from({ length: out.size }, () => rng.normal());
    backward(out, Tensor.from(r, out.shape, 'f32'));
    const eps = 1e-3;
    for (const x of inputs) {
      const dir = Float32Array.from({ length: x.size }, () => rng.normal());
      const orig = Float32Array.from(x.data);
      const at = (step: number) => {
        for (let i = 0; i < x.size; i++) x.data[i] = orig[i] + step * dir[i];
        return noGrad(() => projected(run(inputs), r));
      };
      const numeric = (at(eps) - at(-eps)) / (2 * eps);
      x.data.set(orig);
      let analytic = 0;
      for (let i = 0; i < x.size; i++) analytic += x.grad!.data[i] * dir[i];
      assert.ok(
        Math.abs(numeric - analytic) <= 2e-3 * Math.abs(analytic) + 1e-2,
        `directional ${numeric} vs ${analytic}`,
      );
    }
  }));

test('few-row matmuls (the decoding kernel) equal the oneDNN path, f32 and bf16, with tails and bias', () => {
  const rng = new Rng(5);
  for (const dtype of [NativeDType.f32, NativeDType.bf16]) {
    for (const [N, K] of [
      [37, 77],
      [64, 576],
      [3, 40],
    ]) {
      const rows = 8;
      const a = Float32Array.from({ length: rows * K }, () => rng.normal());
      const w = Float32Array.from({ length: N * K }, () => rng.normal());
      const bias = Float32Array.from({ length: N }, () => rng.normal());
      const [aIn, wIn] =
        dtype === NativeDType.bf16
          ? [Tensor.from(a, [rows, K], 'f32').toBf16().data, Tensor.from(w, [N, K], 'f32').toBf16().data]
          : [a, w];
      const all = new Float32Array(rows * N);
      native.matmul(aIn, wIn, all, rows, N, K, false, true, false, bias, dtype); // 8 rows: oneDNN
      for (let M = 1; M <= 4; M++) {
        const few = Float32Array.from({ length: M * N }, () => 1);
        native.matmul(aIn, wIn, few, M, N, K, false, true, true, bias, dtype); // accumulate onto ones
        for (let i = 0; i < M * N; i++)
          assert.ok(
            Math.abs(few[i] - 1 - all[i]) < 1e-5 * (Math.abs(all[i]) + Math.sqrt(K)),
            `dtype ${dtype} N ${N} K ${K} M ${M} at ${i}: ${few[i] - 1} vs ${all[i]}`,
          );
      }
    }
  }
});

// f32 activations against a bf16 weight: where bf16 products are widened, the f32 product with the widened weight
// (no rounding of the activations); with bf16 dot products, and for decoding's few rows, the bf16 product of the
// rounded activations
test('f32xbf16 matmuls: f32 activations against a bf16 weight, both layouts, with few rows too', () => {
  const rng = new Rng(12);
  const [N, K] = [50, 77];
  const w = Tensor.from(
    Float32Array.from({ length: N * K }, () => rng.normal()),
    [N, K],
    'f32',
  ).toBf16();
  const wF = w.toF32().data;
  for (const M of [37, 3]) {
    const a = Float32Array.from({ length: M * K }, () => rng.normal());
    const aB = Tensor.from(a, [M, K], 'f32').toBf16();
    // where bf16 is widened, the f32 rows are read as they are (decoding's few rows too)
    const widenedHere = native.info().bf16Matmul === 'widened';
    const [want, got] = [new Float32Array(M * N), new Float32Array(M * N)];
    if (widenedHere) native.matmul(a, wF, want, M, N, K, false, true, false, null, NativeDType.f32);
    else native.matmul(aB.data, w.data, want, M, N, K, false, true, false, null, NativeDType.bf16);
    native.matmul(a, w.data, got, M, N, K, false, true, false, null, NativeDType.f32xbf16);
    assert.ok(maxAbs(got.map((v, i) => v - want[i])) < 1e-4, `rows ${M}, transposed weight`);
    // dx = g·w: the weight [N, K] as the contraction's rows
    const g = Float32Array.from({ length: M * N }, () => rng.normal());
    const [dxWant, dx] = [new Float32Array(M * K), new Float32Array(M * K)];
    if (native.info().bf16Matmul === 'widened')
      native.matmul(g, wF, dxWant, M, K, N, false, false, false, null, NativeDType.f32);
    else {
      const gB = Tensor.from(g, [M, N], 'f32').toBf16();
      native.matmul(gB.data, w.data, dxWant, M, K, N, false, false, false, null, NativeDType.bf16);
    }
    native.matmul(g, w.data, dx, M, K, N, false, false, false, null, NativeDType.f32xbf16);
    assert.ok(maxAbs(dx.map((v, i) => v - dxWant[i])) < 1e-4, `rows ${M}, weight as rows`);
  }
});

test('bf16 matmuls with a weight larger than a panel (an LM head) equal f32 on the same values, both layouts', () => {
  // over 4M values: where bf16 operands are widened to f32, B goes a panel of rows at a time
  const rng = new Rng(9);
  const [M, N, K] = [40, 4100, 1100];
  const bits = (n: number) =>
    Tensor.from(
      Float32Array.from({ length: n }, () => rng.normal()),
      [n],
      'f32',
    ).toBf16();
  const [a, w] = [bits(M * K), bits(N * K)];
  const [aF, wF] = [a.toF32().data, w.toF32().data];
  const bias = Float32Array.from({ length: N }, () => rng.normal());
  const g = bits(M * N);
  const gF = g.toF32().data;
  // y = a·wᵀ + bias, onto ones (transB), and dx = g·w, onto ones (B [N, K] as the contraction's rows)
  const y = new Float32Array(M * N).fill(1);
  native.matmul(a.data, w.data, y, M, N, K, false, true, true, bias, NativeDType.bf16);
  const dx = new Float32Array(M * K).fill(1);
  native.matmul(g.data, w.data, dx, M, K, N, false, false, true, null, NativeDType.bf16);
  for (const [m, n] of [
    [0, 0],
    [17, 2049],
    [M - 1, N - 1],
  ]) {
    let s = 1 + bias[n];
    for (let k = 0; k < K; k++) s += aF[m * K + k] * wF[n * K + k];
    assert.ok(Math.abs(y[m * N + n] - s) < 1e-3, `y[${m}, ${n}]: ${y[m * N + n]} vs ${s}`);
  }
  for (const [m, k] of [
    [0, 0],
    [23, 555],
    [M - 1, K - 1],
  ]) {
    let s = 1;
    for (let n = 0; n < N; n++) s += gF[m * N + n] * wF[n * K + k];
    assert.ok(Math.abs(dx[m * K + k] - s) < 1e-2, `dx[${m}, ${k}]: ${dx[m * K + k]} vs ${s}`);
  }
  // dxᵀ = wᵀ·gᵀ, onto ones: the weight as a transposed left operand, widened a slice of the contraction at a time
  // there, against gᵀ read from g [M, N] (transB) and from a copy laid out [N, M]
  const gT = Tensor.from(
    Float32Array.from({ length: N * M }, (_, i) => gF[(i % M) * N + Math.floor(i / M)]),
    [N * M],
    'f32',
  ).toBf16();
  for (const [b, transB] of [
    [g, true],
    [gT, false],
  ] as const) {
    const dxT = new Float32Array(K * M).fill(1);
    native.matmul(w.data, b.data, dxT, K, M, N, true, transB, true, null, NativeDType.bf16);
    for (const k of [0, 555, K - 1])
      for (let m = 0; m < M; m++) {
        let s = 1;
        for (let n = 0; n < N; n++) s += gF[m * N + n] * wF[n * K + k];
        assert.ok(Math.abs(dxT[k * M + m] - s) < 1e-2, `transB ${transB}: dxT[${k}, ${m}]: ${dxT[k * M + m]} vs ${s}`);
      }
  }
  for (const t of [a, w, g, gT]) t.dispose();
});

test("the LM head's cross-entropy over chunks of padded rows equals a double-precision reference, f32 and bf16", () => {
  // 45 rows (7 without a target) in chunks of 16: 16, 16 and 6 rows, padded to the products' row counts
  const rng = new Rng(13);
  const [N, C, V, chunk] = [45, 32, 20_000, 16];
  const x = Float32Array.from({ length: N * C }, () => rng.normal());
  const wF = Float32Array.from({ length: V * C }, () => rng.normal() * 0.2);
  const targets = Int32Array.from({ length: N }, (_, r) => (r % 6 === 5 ? -100 : (r * 7919) % V));
  const weights = Float32Array.from({ length: N }, () => 0.5 + rng.uniform());
  for (const dtype of [NativeDType.f32, NativeDType.bf16]) {
    const bf16 = dtype === NativeDType.bf16;
    // the values the products read: the head, the rows and (not checked here) the gradient rounded to bf16
    const round = (a: Float32Array) => (bf16 ? Tensor.from(a, [a.length], 'f32').toBf16().toF32().data : a);
    const [xR, wR] = [round(x), round(wF)];
    const w = bf16 ? Tensor.from(wF, [V * C], 'f32').toBf16().data : wF;
    const [logp, dx, dW] = [new Float32Array(N), new Float32Array(N * C), new Float32Array(V * C)];
    native.lmHeadCrossEntropy(x, w, targets, weights, logp, dx, dW, N, C, V, dtype, chunk, 0);
    const tol = bf16 ? 1e-2 : 1e-4;
    const dWRef = new Float64Array(V * C);
    for (let r = 0; r < N; r++) {
      if (targets[r] < 0) {
        assert.equal(logp[r], 0);
        assert.equal(maxAbs(dx.subarray(r * C, (r + 1) * C)), 0, `row ${r} has no target: no gradient`);
        continue;
      }
      const z = new Float64Array(V);
      for (let v = 0; v < V; v++) for (let c = 0; c < C; c++) z[v] += xR[r * C + c] * wR[v * C + c];
      let mx = -Infinity;
      for (const zv of z) mx = Math.max(mx, zv);
      let sum = 0;
      for (const zv of z) sum += Math.exp(zv - mx);
      const lse = mx + Math.log(sum);
      assert.ok(Math.abs(logp[r] - (z[targets[r]] - lse)) < tol, `${dtype} logp[${r}]`);
      const g = z.map((zv, v) => weights[r] * (Math.exp(zv - lse) - (v === targets[r] ? 1 : 0)));
      const dxRef = new Float64Array(C);
      for (let v = 0; v < V; v++)
        for (let c = 0; c < C; c++) {
          dxRef[c] += g[v] * wR[v * C + c];
          dWRef[v * C + c] += g[v] * xR[r * C + c];
        }
      const err = maxAbs(dxRef.map((d, c) => d - dx[r * C + c]));
      assert.ok(err < tol * (1 + maxAbs(dxRef)), `${dtype} dx row ${r}: error ${err}`);
    }
    const err = maxAbs(dWRef.map((d, i) => d - dW[i]));
    assert.ok(err < tol * (1 + maxAbs(dWRef)), `${dtype} dW: error ${err}`);
  }
});

test('fillNormal draws N(0, std²) whatever the chunking, from the seed alone', () => {
  const n = 1 << 20;
  const whole = new Float32Array(n);
  native.fillNormal(whole, n, 42, 0, 0.5);
  // the same stream filled in two odd-sized stretches (each starting at an even index)
  const parts = new Float32Array(n);
  native.fillNormal(parts.subarray(0, 1000), 1000, 42, 0, 0.5);
  native.fillNormal(parts.subarray(1000), n - 1000, 42, 1000, 0.5);
  assert.deepEqual(parts, whole);
  let sum = 0,
    sq = 0;
  for (const v of whole) {
    assert.ok(Number.isFinite(v));
    sum += v;
    sq += v * v;
  }
  const mean = sum / n,
    std = Math.sqrt(sq / n - mean * mean);
  assert.ok(Math.abs(mean) < 0.005 && Math.abs(std - 0.5) < 0.005, `mean ${mean}, std ${std}`);
  const other = new Float32Array(8);
  native.fillNormal(other, 8, 43, 0, 0.5);
  assert.notDeepEqual(other, whole.subarray(0, 8));
  assert.throws(() => native.fillNormal(whole, n, 42, 1, 0.5), /even offset/);
});
