/**
 * loraLinear: y = x W^T + b + scale * (xd A^T) B^T as one op, where xd is x after LoRA dropout (or x
 * itself). The update is accumulated into the base output by the matmul, so no delta or sum buffer the
 * size of the activation exists. With g the upstream gradient and u = xd A^T:
 *   dx = g W (+ scale (g B) A when xd is x),  dxd = scale (g B) A,
 *   dA = scale (g B)^T xd,  dB = scale g^T u.
 * W may be a QLoRA base's quantized matrix: its products then go through dequantised panels, and it gets no
 * gradient.
 */
import { native, NativeDType } from '../../native.js';
import { gradTarget, needsGrad, record, type Grad } from '../autograd.js';
import { Tensor } from '../tensor.js';
import { QuantizedMatrix, quantInputGrad, quantProject } from '../quantized.js';
import { biasGrad, checkLinear, gradInput, inputGrad, project, weightGrad } from './linear.js';
import type { OpSpec } from './spec.js';

const f32 = NativeDType.f32;

export function loraLinear(
  x: Tensor<'f32'>,
  xd: Tensor<'f32'>,
  w: Tensor | QuantizedMatrix,
  bias: Tensor<'f32'> | null,
  A: Tensor<'f32'>,
  B: Tensor<'f32'>,
  scale: number,
): Tensor<'f32'> {
  // a QLoRA base reads its weight through dequantised panels and gets no gradient
  const quant = w instanceof QuantizedMatrix ? w : null;
  const dense = quant ? null : (w as Tensor);
  if (dense) checkLinear('loraLinear', x, dense, bias);
  const [r, K] = A.shape;
  const N = w.shape[0];
  if (K !== w.shape[1] || B.shape[0] !== N || B.shape[1] !== r || xd.size !== x.size) {
    throw new Error(`loraLinear: A [${A.shape}] and B [${B.shape}] do not fit weight [${w.shape}]`);
  }
  const p = dense ? project(x, dense, bias) : null;
  const out = p ? p.out : quantProject(x, quant!, bias);
  const rows = x.size / K;
  const us = Tensor.empty([rows, r], 'f32'); // scale * xd A^T
  native.matmul(xd.data, A.data, us.data, rows, r, K, false, true, false, null, f32);
  native.axpby(us.data, null, us.data, us.size, scale, 0);
  native.matmul(us.data, B.data, out.data, rows, N, r, false, true, true, null, f32);
  const separateXd = xd !== x;
  const inputs: Tensor[] = [x, ...(dense ? [dense] : []), A, B, ...(bias ? [bias] : []), ...(separateXd ? [xd] : [])];
  if (!needsGrad(inputs)) return out;
  return record(out, 'loraLinear', inputs, (g, needs) => {
    let i = 0;
    const needX = needs[i++];
    const needW = dense ? needs[i++] : false;
    const needA = needs[i++];
    const needB = needs[i++];
    const needBias = bias ? needs[i++] : false;
    const needXd = separateXd ? needs[i++] : false;
    const gIn = p ? gradInput(g, p) : null;
    // gBs = scale * g B  [rows, r]
    const gBs = Tensor.empty([rows, r], 'f32');
    native.matmul(g.data, B.data, gBs.data, rows, r, N, false, false, false, null, f32);
    native.axpby(gBs.data, null, gBs.data, gBs.size, scale, 0);
    let dx: Grad | null = null;
    if (needX) {
      dx = Tensor.empty(x.shape, 'f32');
      if (p && dense && gIn) inputGrad(gIn.data, p, dense, dx, false);
      else quantInputGrad(g, quant!, dx, false);
      if (!separateXd) native.matmul(gBs.data, A.data, dx.data, rows, K, r, false, false, true, null, f32);
    }
    const dw = needW && p && dense && gIn ? weightGrad(gIn.data, p, dense) : null;
    let dA: Grad | null = null;
    if (needA) {
      const t = gradTarget(A);
      native.matmul(gBs.data, xd.data, t.grad.data, r, K, rows, true, false, true, null, f32);
      dA = t.result;
    }
    let dB: Grad | null = null;
    if (needB) {
      const t = gradTarget(B);
      native.matmul(g.data, us.data, t.grad.data, N, r, rows, true, false, true, null, f32);
      dB = t.result;
    }
    const db = needBias && bias ? biasGrad(g, rows, bias) : null;
    let dxd: Grad | null = null;
    if (needXd) {
      dxd = Tensor.empty(xd.shape, 'f32');
      native.matmul(gBs.data, A.data, dxd.data, rows, K, r, false, false, false, null, f32);
    }
    gBs.dispose();
    gIn?.copy?.dispose();
    return [dx, ...(dense ? [dw] : []), dA, dB, ...(bias ? [db] : []), ...(separateXd ? [dxd] : [])];
  });
}

function reference(
  x: Float64Array,
  xd: Float64Array,
  w: Float64Array,
  b: Float64Array,
  A: Float64Array,
  B: Float64Array,
): Float64Array {
  const rows = 5,
    K = 3,
    N = 4,
    r = 2,
    scale = 1.5;
  const y = new Float64Array(rows * N);
  for (let i = 0; i < rows; i++) {
    const u = Array.from({ length: r }, (_, k) => {
      let s = 0;
      for (let c = 0; c < K; c++) s += xd[i * K + c] * A[k * K + c];
      return s;
    });
    for (let n = 0; n < N; n++) {
      let s = b[n];
      for (let c = 0; c < K; c++) s += x[i * K + c] * w[n * K + c];
      for (let k = 0; k < r; k++) s += scale * u[k] * B[n * r + k];
      y[i * N + n] = s;
    }
  }
  return y;
}

/** Both forms in one example: xd is x, plus a second input through the dropout branch. */
export const loraLinearSpec: OpSpec = {
  inputs: [[5, 3], [4, 3], [4], [2, 3], [4, 2], [5, 3]],
  apply: ([x, w, b, A, B, xd]) => {
    const same = loraLinear(x, x, w, b, A, B, 1.5);
    const other = loraLinear(x, xd, w, b, A, B, 1.5);
    const out = Tensor.empty([2, 5, 4], 'f32');
    out.data.set(same.data, 0);
    out.data.set(other.data, 20);
    // the two results join through a plain sum so that both backward paths are exercised
    return record(out, 'concat', [same, other], (g) => {
      const a = Tensor.from(g.data.subarray(0, 20), [5, 4], 'f32');
      const c = Tensor.from(g.data.subarray(20), [5, 4], 'f32');
      return [a, c];
    });
  },
  reference: ([x, w, b, A, B, xd]) => {
    const out = new Float64Array(40);
    out.set(reference(x, x, w, b, A, B), 0);
    out.set(reference(x, xd, w, b, A, B), 20);
    return out;
  },
};
