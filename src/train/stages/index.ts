/** The stage a config trains (stage: pt, sft, rm, dpo, kto), as the trainer drives it. */
import type { TrainConfig } from '../../config/schema.js';
import type { ProcessedSet } from '../../data/pipeline.js';
import type { CausalLM } from '../../models/registry.js';
import type { MethodSetup } from '../methods.js';
import { kto } from './kto.js';
import { languageModelling } from './language-modelling.js';
import { preference } from './preference.js';
import { rewardModelling } from './reward.js';
import { asObjective, type Objective } from './stage.js';

export type { MicroContext, Objective, StepResult } from './stage.js';

export function makeObjective(
  model: CausalLM,
  set: ProcessedSet,
  c: TrainConfig,
  padId: number,
  setup: MethodSetup,
  microPerStep: number,
): Objective {
  switch (c.stage) {
    case 'pt':
    case 'sft':
      return asObjective(languageModelling(model, set, c, padId), microPerStep);
    case 'rm':
      return asObjective(rewardModelling(model, set, c, padId), microPerStep);
    case 'dpo':
      return asObjective(preference(model, set, c, padId, setup), microPerStep);
    case 'kto':
      return asObjective(kto(model, set, c, padId, setup), microPerStep);
  }
}
