/**
 * affine: out = mul * x + shift with scalar mul and shift: Gemma's embedding scale (× sqrt(hidden)) and its
 * norms' (1 + weight).
 */
import { native } from '../../native.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';

export function affine(x: Tensor<'f32'>, mul: number, shift = 0): Tensor<'f32'> {
  const out = Tensor.empty(x.shape, 'f32');
  native.axpby(x.data, null, out.data, x.size, mul, 0);
  if (shift !== 0) for (let i = 0; i < out.size; i++) out.data[i] += shift;
  return record(out, 'affine', [x], (g) => {
    const dx = Tensor.empty(x.shape, 'f32');
    native.axpby(g.data, null, dx.data, g.size, mul, 0);
    return [dx];
  });
}

export const affineSpec: OpSpec = {
  inputs: [[3, 4]],
  apply: ([x]) => affine(x, 1.5, 1),
  reference: ([x]) => x.map((v) => 1.5 * v + 1),
};
