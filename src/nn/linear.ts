/**
 * Linear layer in Hugging Face's layout (weight [out, in], optional bias). An adapter (LoRA, DoRA …)
 * plugs in as a LinearDelta without the layer knowing which kind it is.
 */
import { linear } from '../tensor/ops/index.js';
import type { Tensor } from '../tensor/tensor.js';

/** What one forward pass tells its layers (training only). */
export interface ForwardPass {
  /** the trainer's global micro-batch counter: adapter dropout masks are a function of it and the layer */
  dropoutStep?: number;
}

export interface LinearDelta {
  /** The layer's output for input x with the adapter applied (the adapter computes the base part too, so it can fuse). */
  forward(x: Tensor<'f32'>, layer: Linear, pass?: ForwardPass): Tensor<'f32'>;
  /** Whether the delta takes part in forward passes now (adapters can be switched off, e.g. for a DPO reference). */
  enabled: boolean;
}

export class Linear {
  weight: Tensor;
  bias: Tensor<'f32'> | null;
  delta: LinearDelta | null = null;

  constructor(weight: Tensor, bias: Tensor<'f32'> | null) {
    this.weight = weight;
    this.bias = bias;
  }

  get inFeatures(): number {
    return this.weight.shape[1];
  }

  get outFeatures(): number {
    return this.weight.shape[0];
  }

  forward(x: Tensor<'f32'>, pass?: ForwardPass): Tensor<'f32'> {
    return this.delta?.enabled ? this.delta.forward(x, this, pass) : linear(x, this.weight, this.bias);
  }
}
