/**
 * dpo with pref_loss sigmoid, hinge, ipo, orpo or simpo: the mean over pairs of the preference loss of the
 * policy's answer log-probabilities against the reference model's (none for orpo and simpo).
 */
import type { TrainConfig } from '../../config/schema.js';
import type { ProcessedSet } from '../../data/pipeline.js';
import type { CausalLM } from '../../models/registry.js';
import { backward, noGrad } from '../../tensor/autograd.js';
import { averaged, preferenceLossOp, sequenceLogps } from '../../tensor/ops/index.js';
import { Tensor, withScope } from '../../tensor/tensor.js';
import type { MethodSetup } from '../methods.js';
import { pairEvalBatches, planPairs, type PairBatch } from './pairs.js';
import { loadReference, referenceLogps } from './reference.js';
import { eachOwned, type Stage } from './stage.js';

export function preference(
  model: CausalLM,
  set: ProcessedSet,
  c: TrainConfig,
  padId: number,
  setup: MethodSetup,
): Stage<PairBatch> {
  const plan = planPairs(set, c.per_device_train_batch_size, c, padId);
  const referenceFree = c.pref_loss === 'orpo' || c.pref_loss === 'simpo';
  // LoRA: the reference is the same model with the adapters off; otherwise a frozen copy (or ref_model)
  const refModel = referenceFree ? null : loadReference(c, setup);
  const referenceValues = (b: PairBatch): { chosen: Float64Array; rejected: Float64Array } | undefined => {
    if (referenceFree) return undefined;
    const { sums, counts } = sequenceLogps(
      referenceLogps(model, refModel, setup, b.input, b.targets),
      b.targets,
      2 * b.pairs,
      b.input.seq,
    );
    const values = sums.map((v, r) => (averaged(c.pref_loss) ? v / Math.max(1, counts[r]) : v));
    return { chosen: Float64Array.from(values.slice(0, b.pairs)), rejected: Float64Array.from(values.slice(b.pairs)) };
  };
  const settings = {
    loss: c.pref_loss,
    beta: c.pref_beta,
    labelSmoothing: c.dpo_label_smoothing,
    simpoGamma: c.simpo_gamma,
    ftx: c.pref_ftx,
  };
  /** the loss of one micro-batch (a graph op) and its pairs' statistics added into `sums` */
  const pairLoss = (b: PairBatch, sums: Record<string, number>, dropoutStep?: number): Tensor<'f32'> => {
    const ref = referenceValues(b);
    const logp = model.tokenLogProbs({ ...b.input, dropoutStep }, b.targets);
    const { loss, stats } = preferenceLossOp(
      logp,
      { targets: b.targets, pairs: b.pairs, seq: b.input.seq, refChosen: ref?.chosen, refRejected: ref?.rejected },
      settings,
    );
    for (let i = 0; i < b.pairs; i++) {
      sums['rewards/chosen'] += stats.rewardsChosen[i];
      sums['rewards/rejected'] += stats.rewardsRejected[i];
      sums['rewards/accuracies'] += stats.rewardsChosen[i] > stats.rewardsRejected[i] ? 1 : 0;
      sums['logps/chosen'] += stats.chosen[i];
      sums['logps/rejected'] += stats.rejected[i];
    }
    return loss;
  };
  const emptySums = (): Record<string, number> => ({
    'rewards/chosen': 0,
    'rewards/rejected': 0,
    'rewards/accuracies': 0,
    'logps/chosen': 0,
    'logps/rejected': 0,
  });
  const means = (sums: Record<string, number>, pairs: number): Record<string, number> => {
    const metrics = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / Math.max(1, pairs)]));
    metrics['rewards/margins'] = metrics['rewards/chosen'] - metrics['rewards/rejected'];
    return metrics;
  };
  return {
    rowsPerUnit: 2,
    batchesPerEpoch: plan.batchesPerEpoch,
    epoch: (e) => plan.epoch(e),
    step(micro, ctx) {
      const sums = emptySums();
      let loss = 0,
        tokens = 0;
      eachOwned(micro, ctx, (b, k) =>
        withScope(() => {
          const l = pairLoss(b, sums, ctx.dropoutStep(k));
          loss += l.data[0] / micro.length;
          backward(l, Tensor.from([1 / micro.length], [1], 'f32'));
          tokens += b.input.batch * b.input.seq;
        }),
      );
      const pairs = micro.reduce((a, b) => a + b.pairs, 0);
      return { loss, tokens, metrics: means(sums, pairs) };
    },
    evaluation: {
      batches: (evalSet) => pairEvalBatches(evalSet, c, padId),
      score(batches) {
        const sums = emptySums();
        let loss = 0,
          pairs = 0;
        noGrad(() => {
          for (const b of batches)
            withScope(() => {
              loss += pairLoss(b, sums).data[0] * b.pairs;
              pairs += b.pairs;
            });
        });
        const metrics = means(sums, pairs);
        return {
          eval_loss: loss / Math.max(1, pairs),
          ...Object.fromEntries(Object.entries(metrics).map(([k, v]) => [`eval_${k}`, v])),
        };
      },
    },
    dispose() {
      refModel?.dispose();
    },
  };
}
