/**
 * What a training stage is (pt/sft, rm, dpo, kto), typed by its own batch, and how the trainer drives one
 * without seeing its batches: `asObjective` plans each epoch, cuts it into optimiser steps of
 * gradient_accumulation_steps micro-batches, and evaluates held-out sets.
 */
import type { ProcessedSet } from '../../data/pipeline.js';
import type { Tensor } from '../../tensor/tensor.js';

/** One step's figures; under data parallelism this process's share, which the ranks' shares add up to. */
export interface StepResult {
  loss: number;
  /** tokens the step processed (padding included), for tokens/s */
  tokens: number;
  /** the same keys on every step */
  metrics: Record<string, number>;
}

/** What varies per micro-batch and must be a function of the step alone (so a resumed run repeats it exactly). */
export interface MicroContext {
  /** the global micro-batch counter: LoRA dropout masks are drawn from it */
  dropoutStep(k: number): number;
  /** NEFTune's noise for micro-batch k, when enabled */
  noise(k: number): { alpha: number; seed: number } | undefined;
  /** whether this process runs micro-batch k (data-parallel ranks each run their slice of the step) */
  owns(k: number): boolean;
  /** called before each micro-batch this process runs; `last` before its final one (gradients then sync as they finish) */
  beginMicro(last: boolean): void;
}

/**
 * Runs fn over the micro-batches this process owns, in order. A stage normalises its loss over all of `micro`
 * (the whole step, every rank's share) and returns sums of its own share: the trainer adds them over ranks.
 * Each micro-batch must call backward once, so that the last one's gradients are final as backward ends.
 */
export function eachOwned<B>(micro: B[], ctx: MicroContext, fn: (b: B, k: number) => void): void {
  const mine = micro.map((_, k) => k).filter((k) => ctx.owns(k));
  mine.forEach((k, i) => {
    ctx.beginMicro(i === mine.length - 1);
    fn(micro[k], k);
  });
}

export interface Stage<B> {
  /** model rows one unit of per_device_train_batch_size puts through the model (a pair: chosen and rejected) */
  rowsPerUnit: number;
  batchesPerEpoch: number;
  /** micro-batches of epoch e, in order */
  epoch(e: number): B[];
  /** forward + backward over the micro-batches of one optimiser step */
  step(micro: B[], ctx: MicroContext): StepResult;
  evaluation?: {
    batches(set: ProcessedSet): B[];
    /** the figures as the log names them (eval_loss, eval_accuracy, eval_rewards/accuracies …) */
    score(batches: B[]): Record<string, number>;
  };
  /** parameters the stage adds (the reward model's value head), trained with the method's own */
  parameters?: [string, Tensor<'f32'>][];
  /** writes what the stage adds beside the model or adapter */
  save?(dir: string): void;
  dispose(): void;
}

/** A stage as the trainer drives it: by optimiser step number. */
export interface Objective {
  rowsPerUnit: number;
  stepsPerEpoch: number;
  /** forward + backward of optimiser step `step` (0-based, over all epochs) */
  step(step: number, ctx: MicroContext): StepResult;
  /** micro-batches of step `step` over all ranks (fewer than a full step's at an epoch's end) */
  microInStep(step: number): number;
  /** the scorer of a held-out set (batched once), for stages that evaluate */
  evaluator?(set: ProcessedSet): () => Record<string, number>;
  parameters?: [string, Tensor<'f32'>][];
  save?(dir: string): void;
  dispose(): void;
}

/** microPerStep: gradient_accumulation_steps times the ranks of the world (the global batch, in micro-batches) */
export function asObjective<B>(stage: Stage<B>, microPerStep: number): Objective {
  const stepsPerEpoch = Math.max(1, Math.ceil(stage.batchesPerEpoch / microPerStep));
  let current: { epoch: number; batches: B[] } | null = null;
  const evaluation = stage.evaluation;
  return {
    rowsPerUnit: stage.rowsPerUnit,
    stepsPerEpoch,
    step(step, ctx) {
      const epoch = Math.floor(step / stepsPerEpoch);
      if (current?.epoch !== epoch) current = { epoch, batches: stage.epoch(epoch) };
      const first = (step % stepsPerEpoch) * microPerStep;
      return stage.step(current.batches.slice(first, first + microPerStep), ctx);
    },
    microInStep: (step) => Math.min(microPerStep, stage.batchesPerEpoch - (step % stepsPerEpoch) * microPerStep),
    evaluator:
      evaluation &&
      ((set) => {
        const batches = evaluation.batches(set);
        return () => evaluation.score(batches);
      }),
    parameters: stage.parameters,
    save: stage.save?.bind(stage),
    dispose: () => stage.dispose(),
  };
}
