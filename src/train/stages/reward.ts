/** rm: a value head on the last real token of each answer, trained so that chosen answers score above rejected ones. */
import type { TrainConfig } from '../../config/schema.js';
import type { ProcessedSet } from '../../data/pipeline.js';
import type { CausalLM } from '../../models/registry.js';
import { lastTokenRows, ValueHead } from '../../models/value-head.js';
import { backward, noGrad } from '../../tensor/autograd.js';
import { rewardLossOp } from '../../tensor/ops/index.js';
import { Tensor, withScope } from '../../tensor/tensor.js';
import { pairEvalBatches, planPairs, type PairBatch } from './pairs.js';
import { eachOwned, type Stage } from './stage.js';

export function rewardModelling(model: CausalLM, set: ProcessedSet, c: TrainConfig, padId: number): Stage<PairBatch> {
  const plan = planPairs(set, c.per_device_train_batch_size, c, padId);
  const head = ValueHead.create(model.config.hiddenSize, c.seed);
  for (const [, p] of head.parameters()) p.requiresGrad = true;
  const forward = (b: PairBatch, dropoutStep?: number) =>
    head.scores(model.hidden({ ...b.input, dropoutStep }), lastTokenRows(b.input.seq, b.lengths));
  return {
    rowsPerUnit: 2,
    parameters: head.parameters(),
    save: (dir) => head.save(dir),
    batchesPerEpoch: plan.batchesPerEpoch,
    epoch: (e) => plan.epoch(e),
    step(micro, ctx) {
      let loss = 0,
        accuracy = 0,
        chosen = 0,
        rejected = 0,
        tokens = 0;
      eachOwned(micro, ctx, (b, k) =>
        withScope(() => {
          tokens += b.input.batch * b.input.seq;
          const r = rewardLossOp(forward(b, ctx.dropoutStep(k)), b.pairs);
          loss += r.loss.data[0] / micro.length;
          accuracy += r.accuracy / micro.length;
          chosen += r.chosen / micro.length;
          rejected += r.rejected / micro.length;
          backward(r.loss, Tensor.from([1 / micro.length], [1], 'f32'));
        }),
      );
      return {
        loss,
        tokens,
        metrics: { accuracy, 'rewards/chosen': chosen, 'rewards/rejected': rejected },
      };
    },
    evaluation: {
      // for a reward model the headline figure is the share of pairs ranked right
      batches: (evalSet) => pairEvalBatches(evalSet, c, padId),
      score(batches) {
        let correct = 0,
          pairs = 0,
          loss = 0;
        noGrad(() => {
          for (const b of batches) {
            withScope(() => {
              const r = forward(b).data;
              for (let i = 0; i < b.pairs; i++) {
                if (r[i] > r[b.pairs + i]) correct++;
                loss += Math.log1p(Math.exp(-(r[i] - r[b.pairs + i])));
              }
              pairs += b.pairs;
            });
          }
        });
        return { eval_loss: loss / Math.max(1, pairs), eval_accuracy: correct / Math.max(1, pairs) };
      },
    },
    dispose: () => head.dispose(),
  };
}
