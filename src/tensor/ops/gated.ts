/**
 * The gated activations: swiglu = silu(gate) * up (LLaMA and most families), geglu = gelu_tanh(gate) * up
 * (Gemma: GELU with the tanh approximation, as gelu_pytorch_tanh), sigmoidGate = sigmoid(gate) * up (Qwen3.5's
 * attention output gate). One op shape, three native kernels.
 */
import { native } from '../../native.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';

type Kernels = {
  forward(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void;
  backward(
    gate: Float32Array,
    up: Float32Array,
    dout: Float32Array,
    dg: Float32Array,
    du: Float32Array,
    n: number,
  ): void;
};

function gated(op: string, k: Kernels, gate: Tensor<'f32'>, up: Tensor<'f32'>): Tensor<'f32'> {
  if (gate.size !== up.size) throw new Error(`${op}: gate [${gate.shape}] and up [${up.shape}] differ`);
  const out = Tensor.empty(gate.shape, 'f32');
  k.forward(gate.data, up.data, out.data, gate.size);
  return record(out, op, [gate, up], (g) => {
    const dg = Tensor.empty(gate.shape, 'f32');
    const du = Tensor.empty(up.shape, 'f32');
    k.backward(gate.data, up.data, g.data, dg.data, du.data, g.size);
    return [dg, du];
  });
}

export function swiglu(gate: Tensor<'f32'>, up: Tensor<'f32'>): Tensor<'f32'> {
  return gated('swiglu', { forward: native.swigluForward, backward: native.swigluBackward }, gate, up);
}

export function geglu(gate: Tensor<'f32'>, up: Tensor<'f32'>): Tensor<'f32'> {
  return gated('geglu', { forward: native.gegluForward, backward: native.gegluBackward }, gate, up);
}

export function sigmoidGate(gate: Tensor<'f32'>, up: Tensor<'f32'>): Tensor<'f32'> {
  return gated('sigmoidGate', { forward: native.sigmoidGateForward, backward: native.sigmoidGateBackward }, gate, up);
}

const exampleShapes = [
  [3, 5],
  [3, 5],
];

export const swigluSpec: OpSpec = {
  inputs: exampleShapes,
  apply: ([g, u]) => swiglu(g, u),
  reference: ([g, u]) => g.map((x, i) => (x / (1 + Math.exp(-x))) * u[i]),
};

export const gegluSpec: OpSpec = {
  inputs: exampleShapes,
  apply: ([g, u]) => geglu(g, u),
  reference: ([g, u]) =>
    g.map((x, i) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))) * u[i]),
};

export const sigmoidGateSpec: OpSpec = {
  inputs: exampleShapes,
  apply: ([g, u]) => sigmoidGate(g, u),
  reference: ([g, u]) => g.map((x, i) => u[i] / (1 + Math.exp(-x))),
};
