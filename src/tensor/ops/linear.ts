/**
 * linear: y[rows, N] = x[rows, K] · W[N, K]^T (+ bias[N]), Hugging Face's nn.Linear layout.
 * bf16 mode: when W is stored in bf16, or carries a bf16 shadow, x and the gradients are rounded to
 * bf16 for the matmuls and everything accumulates in f32 (oneDNN's avx512_core_bf16 kernels).
 */
import { native, NativeDType } from '../../native.js';
import { isLeaf, leafGrad, needsGrad, record, type Grad } from '../autograd.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';

function lowPrecisionWeight(w: Tensor): Tensor<'bf16'> | null {
  if (w.dtype === 'bf16') return w as Tensor<'bf16'>;
  return w.shadow;
}

export function linear(x: Tensor<'f32'>, w: Tensor, bias: Tensor<'f32'> | null = null): Tensor<'f32'> {
  const [N, K] = w.shape;
  if (w.shape.length !== 2 || x.shape[x.shape.length - 1] !== K) {
    throw new Error(`linear: input [${x.shape}] does not match weight [${w.shape}]`);
  }
  if (bias && bias.size !== N) throw new Error(`linear: bias [${bias.shape}] does not match weight [${w.shape}]`);
  const rows = x.size / K;
  const out = Tensor.empty([...x.shape.slice(0, -1), N], 'f32');
  const wl = lowPrecisionWeight(w);
  const xl = wl ? x.toBf16() : null;
  if (wl && xl) native.matmul(xl.data, wl.data, out.data, rows, N, K, false, true, false, bias?.data ?? null, NativeDType.bf16);
  else native.matmul(x.data, w.data as Float32Array, out.data, rows, N, K, false, true, false, bias?.data ?? null, NativeDType.f32);
  if (!needsGrad([x, w, bias])) {
    xl?.dispose();
    return out;
  }
  const inputs = bias ? [x, w, bias] : [x, w];
  return record(out, 'linear', inputs, (g, needs) => {
    const gl = wl ? g.toBf16() : null;
    const gIn = gl ? gl.data : g.data;
    const dtype = gl ? NativeDType.bf16 : NativeDType.f32;
    let dx: Grad | null = null;
    if (needs[0]) {
      dx = Tensor.empty(x.shape, 'f32');
      native.matmul(gIn, (wl ?? w).data as Float32Array | Uint16Array, dx.data, rows, K, N, false, false, false, null, dtype);
    }
    let dw: Grad | null = null;
    if (needs[1]) {
      const leaf = isLeaf(w);
      const target = leaf ? leafGrad(w) : Tensor.zeros(w.shape, 'f32');
      native.matmul(gIn, xl ? xl.data : x.data, target.data, N, K, rows, true, false, true, null, dtype);
      if (!leaf) dw = target;
    }
    let db: Grad | null = null;
    if (bias && needs[2]) {
      const ones = Tensor.from(new Float32Array(rows).fill(1), [rows], 'f32');
      const leaf = isLeaf(bias);
      const target = leaf ? leafGrad(bias) : Tensor.zeros(bias.shape, 'f32');
      native.matmul(ones.data, g.data, target.data, 1, N, rows, false, false, true, null, NativeDType.f32);
      ones.dispose();
      if (!leaf) db = target;
    }
    gl?.dispose();
    return [dx, dw, db];
  });
}

export const linearSpec: OpSpec = {
  inputs: [[5, 3], [4, 3], [4]],
  apply: ([x, w, b]) => linear(x, w, b),
  reference([x, w, b]) {
    const rows = 5, K = 3, N = 4;
    const y = new Float64Array(rows * N);
    for (let r = 0; r < rows; r++) {
      for (let n = 0; n < N; n++) {
        let s = b[n];
        for (let k = 0; k < K; k++) s += x[r * K + k] * w[n * K + k];
        y[r * N + n] = s;
      }
    }
    return y;
  },
};
