/**
 * linear: y[rows, N] = x[rows, K] · W[N, K]^T (+ bias[N]), Hugging Face's nn.Linear layout.
 * bf16 mode: when W is stored in bf16, or carries a bf16 shadow, x and the gradients are rounded to
 * bf16 for the matmuls and everything accumulates in f32 (oneDNN's avx512_core_bf16 kernels). On CPUs without
 * bf16 dot products, where a bf16 product is computed on operands widened to f32, x and the gradients stay f32
 * (only the weight is widened: no conversion passes); so do decoding's few rows everywhere (their kernel reads
 * f32 rows against the bf16 weight, rounding them itself where it uses bf16 dot products).
 * The projection's pieces are exported for ops that extend it (loraLinear).
 */
import { GEMV_MAX_ROWS, native, NativeDType } from '../../native.js';
import { gradTarget, needsGrad, record, type Grad } from '../autograd.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';

/** The weight a matmul reads: bf16 storage or shadow (bf16 mode), else the f32 weight. */
export function matmulWeight(w: Tensor): { data: Float32Array | Uint16Array; dtype: number } {
  if (w.dtype === 'bf16') return { data: w.data as Uint16Array, dtype: NativeDType.bf16 };
  if (w.shadow) return { data: w.shadow.data, dtype: NativeDType.bf16 };
  return { data: w.data as Float32Array, dtype: NativeDType.f32 };
}

/**
 * bf16 copy of an activation, made once and shared by every projection that reads it (q, k and v read
 * the same normed input). Activations are never written after they are made, so the copy stays valid.
 */
const bf16Copies = new WeakMap<Tensor, Tensor<'bf16'>>();
export function bf16Of(x: Tensor<'f32'>): Tensor<'bf16'> {
  let c = bf16Copies.get(x);
  if (!c || c.isDisposed) {
    c = x.toBf16();
    bf16Copies.set(x, c);
  }
  return c;
}

export interface Projection {
  out: Tensor<'f32'>;
  /** the input as the matmul read it (bf16 copy in bf16 mode), for the weight gradient */
  xIn: Float32Array | Uint16Array;
  /** the matmuls' dtype: f32, bf16, or f32xbf16 (f32 activations against the bf16 weight) */
  dtype: number;
  rows: number;
}

/** bf16 products are computed on operands widened to f32 here (no bf16 dot products) */
const bf16Widened = native.info().bf16Matmul === 'widened';

export function checkLinear(op: string, x: Tensor, w: Tensor, bias: Tensor | null): void {
  const [N, K] = w.shape;
  if (w.shape.length !== 2 || x.shape[x.shape.length - 1] !== K) {
    throw new Error(`${op}: input [${x.shape}] does not match weight [${w.shape}]`);
  }
  if (bias && bias.size !== N) throw new Error(`${op}: bias [${bias.shape}] does not match weight [${w.shape}]`);
}

export function project(x: Tensor<'f32'>, w: Tensor, bias: Tensor<'f32'> | null): Projection {
  const [N, K] = w.shape;
  const rows = x.size / K;
  const out = Tensor.empty([...x.shape.slice(0, -1), N], 'f32');
  const wm = matmulWeight(w);
  const f32Rows = bf16Widened || rows <= GEMV_MAX_ROWS;
  const dtype = wm.dtype === NativeDType.bf16 && f32Rows ? NativeDType.f32xbf16 : wm.dtype;
  const xIn = dtype === NativeDType.bf16 ? bf16Of(x).data : x.data;
  native.matmul(xIn, wm.data, out.data, rows, N, K, false, true, false, bias?.data ?? null, dtype);
  return { out, xIn, dtype, rows };
}

/** The upstream gradient as the matmuls read it (bf16 copy in bf16 mode); dispose what it returns. */
export function gradInput(g: Grad, p: Projection): { data: Float32Array | Uint16Array; copy: Tensor | null } {
  if (p.dtype !== NativeDType.bf16) return { data: g.data, copy: null };
  const copy = g.toBf16();
  return { data: copy.data, copy };
}

/** dx (+)= g W */
export function inputGrad(
  gIn: Float32Array | Uint16Array,
  p: Projection,
  w: Tensor,
  dx: Grad,
  accumulate: boolean,
): void {
  const [N, K] = w.shape;
  native.matmul(gIn, matmulWeight(w).data, dx.data, p.rows, K, N, false, false, accumulate, null, p.dtype);
}

/** dW += g^T x, written into the leaf's gradient directly; returns a fresh tensor for a non-leaf. */
export function weightGrad(gIn: Float32Array | Uint16Array, p: Projection, w: Tensor): Grad | null {
  const [N, K] = w.shape;
  const target = gradTarget(w);
  // both operands are activations: f32 unless in bf16 mode proper
  const dtype = p.dtype === NativeDType.bf16 ? NativeDType.bf16 : NativeDType.f32;
  native.matmul(gIn, p.xIn, target.grad.data, N, K, p.rows, true, false, true, null, dtype);
  return target.result;
}

/** db += column sums of g [rows, N] (a matmul with a row of ones). */
export function biasGrad(g: Grad, rows: number, bias: Tensor<'f32'>): Grad | null {
  const N = bias.size;
  const ones = Tensor.from(new Float32Array(rows).fill(1), [rows], 'f32');
  const target = gradTarget(bias);
  native.matmul(ones.data, g.data, target.grad.data, 1, N, rows, false, false, true, null, NativeDType.f32);
  ones.dispose();
  return target.result;
}

export function linear(x: Tensor<'f32'>, w: Tensor, bias: Tensor<'f32'> | null = null): Tensor<'f32'> {
  checkLinear('linear', x, w, bias);
  const p = project(x, w, bias);
  if (!needsGrad([x, w, bias])) return p.out;
  const inputs = bias ? [x, w, bias] : [x, w];
  return record(p.out, 'linear', inputs, (g, needs) => {
    const gIn = gradInput(g, p);
    let dx: Grad | null = null;
    if (needs[0]) {
      dx = Tensor.empty(x.shape, 'f32');
      inputGrad(gIn.data, p, w, dx, false);
    }
    const dw = needs[1] ? weightGrad(gIn.data, p, w) : null;
    const db = bias && needs[2] ? biasGrad(g, p.rows, bias) : null;
    gIn.copy?.dispose();
    return [dx, dw, db];
  });
}

export const linearSpec: OpSpec = {
  inputs: [[5, 3], [4, 3], [4]],
  apply: ([x, w, b]) => linear(x, w, b),
  reference([x, w, b]) {
    const rows = 5,
      K = 3,
      N = 4;
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
