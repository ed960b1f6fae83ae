/** softcap: out = cap * tanh(x / cap), Gemma 2's soft-capping of the final logits (inference path). */
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';

export function softcap(x: Tensor<'f32'>, cap: number): Tensor<'f32'> {
  const out = Tensor.empty(x.shape, 'f32');
  for (let i = 0; i < x.size; i++) out.data[i] = cap * Math.tanh(x.data[i] / cap);
  return record(out, 'softcap', [x], (g) => {
    const dx = Tensor.empty(x.shape, 'f32');
    for (let i = 0; i < x.size; i++) {
      const t = out.data[i] / cap;
      dx.data[i] = g.data[i] * (1 - t * t);
    }
    return [dx];
  });
}

export const softcapSpec: OpSpec = {
  inputs: [[3, 4]],
  apply: ([x]) => softcap(x, 1.5),
  reference: ([x]) => x.map((v) => 1.5 * Math.tanh(v / 1.5)),
};
