/** add: out = a + alpha * b (residual connections, LoRA's scaled update). */
import { native } from '../../native.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';

export function add(a: Tensor<'f32'>, b: Tensor<'f32'>, alpha = 1): Tensor<'f32'> {
  if (a.size !== b.size) throw new Error(`add: [${a.shape}] and [${b.shape}] differ in size`);
  const out = Tensor.empty(a.shape, 'f32');
  native.axpby(b.data, a.data, out.data, a.size, alpha, 1);
  return record(out, 'add', [a, b], (g, needs) => {
    let db: Tensor<'f32'> | null = null;
    if (needs[1]) {
      db = Tensor.empty(b.shape, 'f32');
      native.axpby(g.data, null, db.data, g.size, alpha, 0);
    }
    return [needs[0] ? g : null, db];
  });
}

export const addSpec: OpSpec = {
  inputs: [
    [3, 4],
    [3, 4],
  ],
  apply: ([a, b]) => add(a, b, 0.5),
  reference: ([a, b]) => a.map((v, i) => v + 0.5 * b[i]),
};
