/**
 * dropout: zeroes each element with probability p and scales the rest by 1/(1-p). The mask comes from a
 * counter-based hash of (seed, index), so the backward pass regenerates it instead of storing it.
 */
import { native } from '../../native.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';

export function dropout(x: Tensor<'f32'>, p: number, seed: number): Tensor<'f32'> {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  const out = Tensor.empty(x.shape, 'f32');
  native.dropout(x.data, out.data, x.size, p, seed);
  return record(out, 'dropout', [x], (g) => {
    const dx = Tensor.empty(x.shape, 'f32');
    native.dropout(g.data, dx.data, g.size, p, seed);
    return [dx];
  });
}

export const dropoutSpec: OpSpec = {
  inputs: [[4, 6]],
  apply: ([x]) => dropout(x, 0.25, 11),
  reference([x]) {
    // The mask is whatever the kernel draws: read it back from a run on ones, then apply it in double.
    const ones = Tensor.from(new Float32Array(x.length).fill(1), [x.length], 'f32');
    const mask = dropout(ones, 0.25, 11);
    const y = x.map((v, i) => v * mask.data[i]);
    ones.dispose();
    mask.dispose();
    return y;
  },
};
