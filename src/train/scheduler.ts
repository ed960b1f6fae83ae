/**
 * Learning-rate schedules with Hugging Face's semantics: a multiplier of the base rate for each optimiser
 * step, with linear warmup from 0 over the warmup steps.
 */
import type { TrainConfig } from '../config/schema.js';

export type SchedulerType = TrainConfig['lr_scheduler_type'];

export function warmupSteps(c: Pick<TrainConfig, 'warmup_steps' | 'warmup_ratio'>, totalSteps: number): number {
  return c.warmup_steps > 0 ? c.warmup_steps : Math.ceil(totalSteps * c.warmup_ratio);
}

/** Hugging Face's polynomial decay ends at this absolute rate (power 1). */
const POLYNOMIAL_LR_END = 1e-7;

/** lr multiplier of baseLr at optimiser step `step` (0-based) of `total`. */
export function lrFactor(type: SchedulerType, step: number, total: number, warmup: number, baseLr: number): number {
  if (type === 'constant') return 1;
  if (step < warmup) return step / Math.max(1, warmup);
  if (type === 'constant_with_warmup') return 1;
  const progress = (step - warmup) / Math.max(1, total - warmup);
  switch (type) {
    case 'linear':
      return Math.max(0, (total - step) / Math.max(1, total - warmup));
    case 'cosine':
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
    case 'cosine_with_restarts': {
      if (progress >= 1) return 0;
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * (progress % 1))));
    }
    case 'polynomial': {
      const end = POLYNOMIAL_LR_END / baseLr;
      if (step > total) return end;
      return (1 - end) * (1 - progress) + end;
    }
  }
}
