/** The reference model of dpo and kto: the policy with its LoRA adapters switched off, or a frozen model. */
import { setLoraEnabled } from '../../adapters/lora.js';
import type { TrainConfig } from '../../config/schema.js';
import type { TokenBatch } from '../../data/collator.js';
import type { CausalLM } from '../../models/registry.js';
import { loadFrozenReference } from '../load-model.js';
import { noGrad } from '../../tensor/autograd.js';
import { withScope } from '../../tensor/tensor.js';
import type { MethodSetup } from '../methods.js';

/** A separate frozen model for full and freeze tuning (or ref_model); null when LoRA's base serves. */
export function loadReference(c: TrainConfig, setup: MethodSetup): CausalLM | null {
  return setup.lora && !c.ref_model ? null : loadFrozenReference(c);
}

/** The reference's per-token log-probabilities of the targets, without gradient. */
export function referenceLogps(
  model: CausalLM,
  refModel: CausalLM | null,
  setup: MethodSetup,
  input: TokenBatch,
  targets: Int32Array,
): Float32Array {
  return noGrad(() =>
    withScope(() => {
      if (!refModel) setLoraEnabled(setup.lora!.layers, false);
      try {
        return Float32Array.from((refModel ?? model).tokenLogProbs(input, targets).data);
      } finally {
        if (!refModel) setLoraEnabled(setup.lora!.layers, true);
      }
    }),
  );
}
