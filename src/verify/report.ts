/** What `lmf verify` reports, and the comparison of one computed tensor with its golden values. */
import { LmfError } from '../errors.js';
import type { LoraLayer } from '../adapters/lora.js';
import { quantizeFor } from '../models/quant/quantize.js';
import { loadModel, type CausalLM } from '../models/registry.js';
import type { Tensor } from '../tensor/tensor.js';

export interface TensorReport {
  name: string;
  max_abs_diff: number;
  /** max |ours - golden| / max |golden| */
  max_rel_diff: number;
  tolerance: number;
  /** which of the two differences the tolerance applies to */
  measure: 'abs' | 'rel';
  ok: boolean;
}

export interface VerifyReport {
  model: string;
  golden: string;
  adapter: string | null;
  ok: boolean;
  tensors: TensorReport[];
}

export interface VerifyOptions {
  model: string;
  golden: string;
  adapter?: string;
  /** absolute tolerance for logits and loss */
  atol: number;
  /** tolerance for gradients, relative to the golden tensor's largest value */
  gradRtol: number;
  /** QLoRA: the base's projections quantized to these bits with bitsandbytes' nf4 (4) or LLM.int8 (8) */
  quantizationBit?: 4 | 8;
}

/**
 * The model a check runs on, in f32. With quantizationBit its projections are quantized (QLoRA), which only a
 * check of an adapter can use: a quantized base has no weights of its own to compare or to train.
 */
export function loadVerifiedModel(o: VerifyOptions, withAdapter: boolean): CausalLM {
  if (o.quantizationBit && !withAdapter)
    throw new LmfError('bad_value', 'a quantized base is checked through an adapter (QLoRA trains LoRA only)', {
      file: o.golden,
      hint: 'give --adapter and a golden file of LoRA numbers (golden_lora, golden_dpo)',
    });
  const quantize = quantizeFor(o.quantizationBit ?? null, 'nf4', true, 'f32');
  return loadModel(o.model, { dtype: 'f32', quantize }).model;
}

export function compare(
  name: string,
  ours: ArrayLike<number>,
  want: Float64Array,
  tolerance: number,
  measure: 'abs' | 'rel',
): TensorReport {
  if (ours.length !== want.length) {
    throw new LmfError('golden_mismatch', `${ours.length} values computed, ${want.length} stored`, { tensor: name });
  }
  let diff = 0,
    scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(ours[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  const rel = diff / (scale + 1e-12);
  const value = measure === 'abs' ? diff : rel;
  return { name, max_abs_diff: diff, max_rel_diff: rel, tolerance, measure, ok: value <= tolerance };
}

/** An adapter's trainable tensors by their PEFT names (base_model.model.<module>.lora_A.weight …). */
export function adapterParameters(layers: Map<string, LoraLayer>): [string, Tensor][] {
  return [...layers].flatMap(
    ([name, l]) =>
      [
        [`base_model.model.${name}.lora_A.weight`, l.A],
        [`base_model.model.${name}.lora_B.weight`, l.B],
      ] as [string, Tensor][],
  );
}

/** The report of a run: ok when every tensor is. */
export function reportOf(o: VerifyOptions, tensors: TensorReport[]): VerifyReport {
  return { model: o.model, golden: o.golden, adapter: o.adapter ?? null, ok: tensors.every((r) => r.ok), tensors };
}
