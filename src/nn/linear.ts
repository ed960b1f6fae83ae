/**
 * Linear layer in Hugging Face's layout (weight [out, in], optional bias). An adapter (LoRA, DoRA …)
 * plugs in as a LinearDelta without the layer knowing which kind it is. The weight is a tensor, or — for a
 * QLoRA base — a frozen quantized matrix that only the base projection reads.
 */
import { LmfError } from '../errors.js';
import { linear } from '../tensor/ops/index.js';
import { QuantizedMatrix, quantLinear } from '../tensor/quantized.js';
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
  /**
   * At inference, the plain update scale · (x Aᵀ) Bᵀ that forward adds to the base output, when that is all the
   * delta is (a single LoRA adapter; not DoRA, not a stack): kernels outside forward may apply it themselves.
   */
  lowRank?(): LowRankUpdate | null;
}

/** A LoRA update's factors: A [r, in], B [out, r], and its scale. */
export interface LowRankUpdate {
  A: Tensor<'f32'>;
  B: Tensor<'f32'>;
  scale: number;
}

export class Linear {
  /** The weight as it is kept: full precision, or a QLoRA base's quantized matrix (what projections read). */
  readonly stored: Tensor | QuantizedMatrix;
  bias: Tensor<'f32'> | null;
  delta: LinearDelta | null = null;

  constructor(weight: Tensor | QuantizedMatrix, bias: Tensor<'f32'> | null) {
    this.stored = weight;
    this.bias = bias;
  }

  /** The full-precision weight; a quantized base has none, and what needs it stops with the reason. */
  get weight(): Tensor {
    if (this.stored instanceof QuantizedMatrix)
      throw new LmfError('quantized_base', 'this needs the full-precision weight, and the base is quantized (QLoRA)', {
        hint: 'point model_name_or_path at the unquantized model, without quantization_bit',
      });
    return this.stored;
  }

  /** The quantized weight of a QLoRA base, or null. */
  get quantized(): QuantizedMatrix | null {
    return this.stored instanceof QuantizedMatrix ? this.stored : null;
  }

  get inFeatures(): number {
    return this.stored.shape[1];
  }

  get outFeatures(): number {
    return this.stored.shape[0];
  }

  /** x·Wᵀ + b without the adapter. */
  base(x: Tensor<'f32'>): Tensor<'f32'> {
    return this.stored instanceof QuantizedMatrix
      ? quantLinear(x, this.stored, this.bias)
      : linear(x, this.stored, this.bias);
  }

  forward(x: Tensor<'f32'>, pass?: ForwardPass): Tensor<'f32'> {
    return this.delta?.enabled ? this.delta.forward(x, this, pass) : this.base(x);
  }
}
