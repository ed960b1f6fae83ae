/** pt and sft: the mean cross-entropy over every target token of the accumulated batch. */
import type { TrainConfig } from '../../config/schema.js';
import type { TokenBatch } from '../../data/collator.js';
import type { ProcessedSet } from '../../data/pipeline.js';
import { LmfError } from '../../errors.js';
import { shiftLabels } from '../../models/decoder.js';
import type { CausalLM } from '../../models/registry.js';
import { backward, noGrad } from '../../tensor/autograd.js';
import { withScope } from '../../tensor/tensor.js';
import { planBatches } from '../batches.js';
import { eachOwned, type Stage } from './stage.js';

export function languageModelling(
  model: CausalLM,
  set: ProcessedSet,
  c: TrainConfig,
  padId: number,
): Stage<TokenBatch> {
  if (set.kind !== 'sft' && set.kind !== 'pt')
    throw new LmfError('internal', `language modelling cannot train ${set.kind} data`);
  const packing = c.stage === 'sft' && (c.packing || c.neat_packing) ? { cutoffLen: c.cutoff_len } : null;
  const plan = planBatches(set.examples, c.per_device_train_batch_size, c.seed, padId, packing);
  return {
    rowsPerUnit: 1,
    batchesPerEpoch: plan.batchesPerEpoch,
    epoch: (e) => plan.epoch(e),
    step(micro, ctx) {
      const targetsOf = micro.map((b) => shiftLabels(b.labels, b.batch, b.seq));
      const count = targetsOf.reduce((a, t) => a + t.reduce((s, x) => s + (x >= 0 ? 1 : 0), 0), 0);
      let loss = 0,
        tokens = 0;
      eachOwned(micro, ctx, (b, k) =>
        withScope(() => {
          tokens += b.batch * b.seq;
          const weights = Float32Array.from(targetsOf[k], (t) => (t >= 0 && count ? 1 / count : 0));
          const l = model.loss(
            { ...b, embeddingNoise: ctx.noise(k), dropoutStep: ctx.dropoutStep(k) },
            targetsOf[k],
            weights,
          );
          loss += l.data[0];
          if (l.requiresGrad) backward(l);
        }),
      );
      return { loss, tokens, metrics: {} };
    },
    evaluation: {
      batches: (evalSet) => {
        if (evalSet.kind !== 'sft' && evalSet.kind !== 'pt')
          throw new LmfError('internal', `cannot evaluate ${evalSet.kind} data`);
        return planBatches(evalSet.examples, c.per_device_eval_batch_size, c.seed, padId, packing).epoch(0);
      },
      score(batches) {
        let sum = 0,
          n = 0;
        noGrad(() => {
          for (const b of batches) {
            withScope(() => {
              const targets = shiftLabels(b.labels, b.batch, b.seq);
              const count = targets.reduce((a, t) => a + (t >= 0 ? 1 : 0), 0);
              if (!count) return;
              sum += model.loss(
                b,
                targets,
                Float32Array.from(targets, (t) => (t >= 0 ? 1 : 0)),
              ).data[0];
              n += count;
            });
          }
        });
        const loss = n ? sum / n : NaN;
        return { eval_loss: loss, perplexity: Math.exp(loss) };
      },
    },
    dispose() {},
  };
}
