/**
 * Linear layer in Hugging Face's layout (weight [out, in], optional bias). An adapter (LoRA, DoRA …)
 * plugs in as a LinearDelta without the layer knowing which kind it is.
 */
import { linear } from '../tensor/ops/index.js';
import type { Tensor } from '../tensor/tensor.js';

export interface LinearDelta {
  /** Returns the layer's output given its input x and the base output y = x W^T + b. */
  apply(x: Tensor<'f32'>, base: Tensor<'f32'>): Tensor<'f32'>;
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

  forward(x: Tensor<'f32'>): Tensor<'f32'> {
    const y = linear(x, this.weight, this.bias);
    return this.delta?.enabled ? this.delta.apply(x, y) : y;
  }
}
