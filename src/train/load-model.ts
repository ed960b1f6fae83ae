/**
 * The models a training config names: the one that trains (its storage chosen by the method, its projections
 * quantized for QLoRA) and a frozen reference for dpo and kto. Both see LLaMA-Factory's rope_scaling key the same
 * way: the context stretched to cutoff_len.
 */
import type { TrainConfig } from '../config/schema.js';
import { LmfError } from '../errors.js';
import { quantizeFor } from '../models/quant/quantize.js';
import { loadModel, type CausalLM, type LoadOptions } from '../models/registry.js';

function stretch(c: TrainConfig): LoadOptions['ropeScaling'] {
  return c.rope_scaling ? { kind: c.rope_scaling, modelMaxLength: c.cutoff_len } : null;
}

/** LLaMA-Factory's rules for a quantized base: LoRA only, bitsandbytes only, no PiSSA. */
function checkQuantization(c: TrainConfig): void {
  if (c.quantization_bit === null) return;
  const refuse = (message: string, key: string, hint: string) => {
    throw new LmfError('bad_value', message, { key, hint });
  };
  if (c.quantization_method !== 'bnb')
    refuse(`quantization_method ${c.quantization_method} is not supported`, 'quantization_method', 'use bnb');
  if (c.finetuning_type !== 'lora')
    refuse('a quantized base can only be trained with LoRA', 'finetuning_type', 'set finetuning_type: lora');
  if (c.pissa_init) refuse('PiSSA cannot start from a quantized base', 'pissa_init', 'set pissa_init: false');
}

export function loadTrainedModel(c: TrainConfig): CausalLM {
  checkQuantization(c);
  // LoRA with bf16 keeps the frozen base in bf16; full and freeze keep f32 master weights (+ bf16 copies)
  // (modules trained whole beside LoRA need f32 storage, so additional_target keeps the base in f32)
  const storage = c.bf16 && c.finetuning_type === 'lora' && !c.additional_target?.length ? 'bf16' : 'f32';
  const { model } = loadModel(c.model_name_or_path, {
    dtype: storage,
    ropeScaling: stretch(c),
    quantize: quantizeFor(c.quantization_bit, c.quantization_type, c.double_quantization, c.bf16 ? 'bf16' : 'f32'),
  });
  model.gradientCheckpointing = !c.disable_gradient_checkpointing;
  return model;
}

/** The frozen reference of dpo and kto: ref_model, or the base model itself. */
export function loadFrozenReference(c: TrainConfig): CausalLM {
  const dtype = c.bf16 ? 'bf16' : 'f32';
  return loadModel(c.ref_model ?? c.model_name_or_path, { dtype, ropeScaling: stretch(c) }).model;
}
