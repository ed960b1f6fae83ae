/**
 * doraScale: out[r, o] = y[r, o] * m[o] * nInv[o] (+ bias[o]), the magnitude step of DoRA, where nInv is the
 * inverse row norm of the adapted weight, treated as a constant as the DoRA paper (and PEFT) do.
 * Gradients: dy = g * m * nInv, dm = sum_r g * y * nInv, dbias = sum_r g.
 */
import { gradTarget, record, type Grad } from '../autograd.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';

export function doraScale(
  y: Tensor<'f32'>,
  m: Tensor<'f32'>,
  nInv: Float32Array,
  bias: Tensor<'f32'> | null,
): Tensor<'f32'> {
  const O = m.size;
  const rows = y.size / O;
  if (!Number.isInteger(rows) || nInv.length !== O || (bias && bias.size !== O)) {
    throw new Error(`doraScale: output [${y.shape}] does not match magnitude [${m.shape}]`);
  }
  const out = Tensor.empty(y.shape, 'f32');
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < O; o++)
      out.data[r * O + o] = y.data[r * O + o] * m.data[o] * nInv[o] + (bias ? bias.data[o] : 0);
  }
  const inputs = bias ? [y, m, bias] : [y, m];
  return record(out, 'doraScale', inputs, (g, needs) => {
    let dy: Grad | null = null;
    if (needs[0]) {
      dy = Tensor.empty(y.shape, 'f32');
      for (let r = 0; r < rows; r++)
        for (let o = 0; o < O; o++) dy.data[r * O + o] = g.data[r * O + o] * m.data[o] * nInv[o];
    }
    const vectorGrad = (t: Tensor<'f32'>, value: (r: number, o: number) => number): Grad | null => {
      const target = gradTarget(t);
      for (let r = 0; r < rows; r++) for (let o = 0; o < O; o++) target.grad.data[o] += value(r, o);
      return target.result;
    };
    const dm = needs[1] ? vectorGrad(m, (r, o) => g.data[r * O + o] * y.data[r * O + o] * nInv[o]) : null;
    const db = bias && needs[2] ? vectorGrad(bias, (r, o) => g.data[r * O + o]) : null;
    return [dy, dm, db];
  });
}

const exampleNInv = Float32Array.from([0.5, 2, 1.25]);

export const doraScaleSpec: OpSpec = {
  inputs: [[4, 3], [3], [3]],
  apply: ([y, m, b]) => doraScale(y, m, exampleNInv, b),
  reference: ([y, m, b]) => y.map((v, i) => v * m[i % 3] * exampleNInv[i % 3] + b[i % 3]),
};
