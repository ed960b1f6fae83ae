/** kto: desirable and undesirable answers against the reference, with TRL's KL estimate from mismatched pairs. */
import type { TrainConfig } from '../../config/schema.js';
import { padBatch, type TokenBatch } from '../../data/collator.js';
import type { ProcessedSet } from '../../data/pipeline.js';
import { LmfError } from '../../errors.js';
import { shiftLabels } from '../../models/decoder.js';
import type { CausalLM } from '../../models/registry.js';
import { backward, noGrad } from '../../tensor/autograd.js';
import { ktoLossOp, sequenceLogps, type KtoLoss } from '../../tensor/ops/index.js';
import { Tensor, withScope } from '../../tensor/tensor.js';
import { planUnits } from '../batches.js';
import type { MethodSetup } from '../methods.js';
import { loadReference, referenceLogps } from './reference.js';
import { eachOwned, type Stage } from './stage.js';

export interface KtoBatch {
  input: TokenBatch;
  targets: Int32Array;
  /** examples (rows 0..n-1) then their mismatched KL pairs (rows n..2n-1) */
  n: number;
  desirable: boolean[];
}

type KtoExamples = Extract<ProcessedSet, { kind: 'kto' }>['examples'];

export function kto(
  model: CausalLM,
  set: ProcessedSet,
  c: TrainConfig,
  padId: number,
  setup: MethodSetup,
): Stage<KtoBatch> {
  const plan = (s: ProcessedSet, batchSize: number) => {
    if (s.kind !== 'kto') throw new LmfError('internal', `kto needs kto data, not ${s.kind}`);
    return planUnits(s.examples, batchSize, c.seed, (items: KtoExamples): KtoBatch => {
      const input = padBatch([...items.map((e) => e.example), ...items.map((e) => e.kl)], padId);
      return {
        input,
        targets: shiftLabels(input.labels, input.batch, input.seq),
        n: items.length,
        desirable: items.map((e) => e.desirable),
      };
    });
  };
  const train = plan(set, c.per_device_train_batch_size);
  const refModel = loadReference(c, setup);
  const settings = {
    beta: c.pref_beta,
    desirableWeight: c.kto_chosen_weight,
    undesirableWeight: c.kto_rejected_weight,
  };
  const batchLoss = (b: KtoBatch, dropoutStep?: number): KtoLoss => {
    const refSums = sequenceLogps(
      referenceLogps(model, refModel, setup, b.input, b.targets),
      b.targets,
      2 * b.n,
      b.input.seq,
    ).sums;
    const logp = model.tokenLogProbs({ ...b.input, dropoutStep }, b.targets);
    return ktoLossOp(logp, { targets: b.targets, n: b.n, seq: b.input.seq, refSums, desirable: b.desirable }, settings);
  };
  return {
    rowsPerUnit: 2,
    batchesPerEpoch: train.batchesPerEpoch,
    epoch: (e) => train.epoch(e),
    step(micro, ctx) {
      let loss = 0,
        kl = 0,
        tokens = 0;
      eachOwned(micro, ctx, (b, k) =>
        withScope(() => {
          tokens += b.input.batch * b.input.seq;
          const r = batchLoss(b, ctx.dropoutStep(k));
          loss += r.loss.data[0] / micro.length;
          kl += r.kl / micro.length;
          backward(r.loss, Tensor.from([1 / micro.length], [1], 'f32'));
        }),
      );
      return { loss, tokens, metrics: { kl } };
    },
    evaluation: {
      batches: (evalSet) => plan(evalSet, c.per_device_eval_batch_size).epoch(0),
      score(batches) {
        let loss = 0,
          kl = 0,
          n = 0;
        const chosen: number[] = [],
          rejected: number[] = [];
        noGrad(() => {
          for (const b of batches) {
            withScope(() => {
              const r = batchLoss(b);
              loss += r.loss.data[0] * b.n;
              kl += r.kl * b.n;
              n += b.n;
              r.rewards.forEach((v, i) => (b.desirable[i] ? chosen : rejected).push(v));
            });
          }
        });
        const mean = (xs: number[]) => (xs.length ? xs.reduce((a, x) => a + x, 0) / xs.length : 0);
        return {
          eval_loss: loss / Math.max(1, n),
          eval_kl: kl / Math.max(1, n),
          'eval_rewards/chosen': mean(chosen),
          'eval_rewards/rejected': mean(rejected),
          'eval_rewards/margins': mean(chosen) - mean(rejected),
        };
      },
    },
    dispose: () => refModel?.dispose(),
  };
}
