/** geglu: gelu_tanh(gate) * up, Gemma's gated MLP (GELU with the tanh approximation, as gelu_pytorch_tanh). */
import { native } from '../../native.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';

export function geglu(gate: Tensor<'f32'>, up: Tensor<'f32'>): Tensor<'f32'> {
  if (gate.size !== up.size) throw new Error(`geglu: gate [${gate.shape}] and up [${up.shape}] differ`);
  const out = Tensor.empty(gate.shape, 'f32');
  native.gegluForward(gate.data, up.data, out.data, gate.size);
  return record(out, 'geglu', [gate, up], (g) => {
    const dg = Tensor.empty(gate.shape, 'f32');
    const du = Tensor.empty(up.shape, 'f32');
    native.gegluBackward(gate.data, up.data, g.data, dg.data, du.data, g.size);
    return [dg, du];
  });
}

export const gegluSpec: OpSpec = {
  inputs: [
    [3, 5],
    [3, 5],
  ],
  apply: ([g, u]) => geglu(g, u),
  reference: ([g, u]) =>
    g.map((x, i) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))) * u[i]),
};
