/** swiglu: silu(gate) * up, the LLaMA MLP's gate. */
import { native } from '../../native.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';

export function swiglu(gate: Tensor<'f32'>, up: Tensor<'f32'>): Tensor<'f32'> {
  if (gate.size !== up.size) throw new Error(`swiglu: gate [${gate.shape}] and up [${up.shape}] differ`);
  const out = Tensor.empty(gate.shape, 'f32');
  native.swigluForward(gate.data, up.data, out.data, gate.size);
  return record(out, 'swiglu', [gate, up], (g) => {
    const dg = Tensor.empty(gate.shape, 'f32');
    const du = Tensor.empty(up.shape, 'f32');
    native.swigluBackward(gate.data, up.data, g.data, dg.data, du.data, g.size);
    return [dg, du];
  });
}

export const swigluSpec: OpSpec = {
  inputs: [
    [3, 5],
    [3, 5],
  ],
  apply: ([g, u]) => swiglu(g, u),
  reference: ([g, u]) => g.map((x, i) => (x / (1 + Math.exp(-x))) * u[i]),
};
