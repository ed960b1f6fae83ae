/**
 * What one optimiser step computes, per stage: the batches of an epoch and, for the micro-batches of one
 * step, the forward and backward passes. The loop in trainer.ts is the same for every stage.
 *   language modelling (pt, sft): mean cross-entropy over every target token of the accumulated batch;
 *   preference (dpo with pref_loss sigmoid/hinge/ipo/orpo/simpo): mean over pairs; the reference model is
 *   the policy with its LoRA adapters switched off, or a frozen copy for full and freeze tuning.
 */
import { setLoraEnabled } from '../adapters/lora.js';
import type { TrainConfig } from '../config/schema.js';
import { padBatch, type TokenBatch } from '../data/collator.js';
import type { ProcessedSet } from '../data/pipeline.js';
import type { EncodedPair } from '../data/processors/pairwise.js';
import { LmfError } from '../errors.js';
import { shiftLabels } from '../models/llama.js';
import { loadModel, type CausalLM } from '../models/registry.js';
import { backward, noGrad } from '../tensor/autograd.js';
import { Tensor, withScope } from '../tensor/tensor.js';
import { planBatches, planUnits } from './batches.js';
import { ktoLoss, rewardLoss } from './losses/pairwise-losses.js';
import { averaged, preferenceLossOp, sequenceLogps } from './losses/preference.js';
import { Scalar } from './losses/scalar.js';
import { lastTokenRows, ValueHead } from '../models/value-head.js';
import { record } from '../tensor/autograd.js';
import type { MethodSetup } from './methods.js';

export interface StepResult {
  loss: number;
  /** tokens the step processed (padding included), for tokens/s */
  tokens: number;
  metrics: Record<string, number>;
}

export interface Objective {
  /** parameters the stage adds (the reward model's value head), trained with the method's own */
  parameters?: [string, Tensor<'f32'>][];
  /** writes what the stage adds beside the model or adapter */
  save?(dir: string): void;
  batchesPerEpoch: number;
  /** micro-batches of epoch e, in order (an opaque batch type per stage) */
  epoch(e: number): unknown[];
  /** forward + backward over the micro-batches of one optimiser step */
  step(micro: unknown[], microIndex: (k: number) => void, noise: (k: number) => { alpha: number; seed: number } | undefined): StepResult;
  /** evaluation, for the stages that have one: batches of an evaluation set, and their score without gradients */
  evaluation?: Evaluation;
  dispose(): void;
}

export interface Evaluation {
  batches(set: ProcessedSet): unknown[];
  /** the figures as the log names them (eval_loss, eval_accuracy, eval_rewards/accuracies …) */
  score(batches: unknown[]): Record<string, number>;
}

function languageModelling(model: CausalLM, set: ProcessedSet, c: TrainConfig, padId: number): Objective {
  if (set.kind !== 'sft' && set.kind !== 'pt') throw new LmfError('internal', `language modelling cannot train ${set.kind} data`);
  const packing = c.stage === 'sft' && (c.packing || c.neat_packing) ? { cutoffLen: c.cutoff_len } : null;
  const plan = planBatches(set.examples, c.per_device_train_batch_size, c.seed, padId, packing);
  return {
    batchesPerEpoch: plan.batchesPerEpoch,
    epoch: (e) => plan.epoch(e),
    step(microRaw, microIndex, noise) {
      const micro = microRaw as TokenBatch[];
      const targetsOf = micro.map((b) => shiftLabels(b.labels, b.batch, b.seq));
      const count = targetsOf.reduce((a, t) => a + t.reduce((s, x) => s + (x >= 0 ? 1 : 0), 0), 0);
      let loss = 0;
      micro.forEach((b, k) => withScope(() => {
        microIndex(k);
        const weights = Float32Array.from(targetsOf[k], (t) => (t >= 0 && count ? 1 / count : 0));
        const l = model.loss({ ...b, embeddingNoise: noise(k) }, targetsOf[k], weights);
        loss += l.data[0];
        if (l.requiresGrad) backward(l);
      }));
      return { loss, tokens: micro.reduce((a, b) => a + b.batch * b.seq, 0), metrics: {} };
    },
    evaluation: {
      batches: (evalSet) => {
        if (evalSet.kind !== 'sft' && evalSet.kind !== 'pt') throw new LmfError('internal', `cannot evaluate ${evalSet.kind} data`);
        return planBatches(evalSet.examples, c.per_device_eval_batch_size, c.seed, padId, packing).epoch(0);
      },
      score(batches) {
        let sum = 0, n = 0;
        noGrad(() => {
          for (const b of batches as TokenBatch[]) {
            withScope(() => {
              const targets = shiftLabels(b.labels, b.batch, b.seq);
              const count = targets.reduce((a, t) => a + (t >= 0 ? 1 : 0), 0);
              if (!count) return;
              sum += model.loss(b, targets, Float32Array.from(targets, (t) => (t >= 0 ? 1 : 0))).data[0];
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

interface PairBatch {
  input: TokenBatch;
  targets: Int32Array;
  pairs: number;
  /** real tokens per row, chosen rows then rejected */
  lengths: number[];
}

function collatePairs(pairs: EncodedPair[], padId: number): PairBatch {
  const rows = [...pairs.map((p) => p.chosen), ...pairs.map((p) => p.rejected)];
  const input = padBatch(rows, padId);
  return { input, targets: shiftLabels(input.labels, input.batch, input.seq), pairs: pairs.length, lengths: rows.map((r) => r.ids.length) };
}

/** -log sigmoid(r_chosen - r_rejected) over rewards [2P] (chosen then rejected), as a graph op. */
function rewardLossOp(rewards: Tensor<'f32'>, pairs: number): { loss: Tensor<'f32'>; accuracy: number; chosen: number; rejected: number } {
  const r = Array.from(rewards.data, (v) => Scalar.of(v));
  const loss = rewardLoss(Array.from({ length: pairs }, (_, i) => ({ chosen: r[i], rejected: r[pairs + i] })));
  loss.backward();
  let correct = 0, chosen = 0, rejected = 0;
  for (let i = 0; i < pairs; i++) {
    if (r[i].value > r[pairs + i].value) correct++;
    chosen += r[i].value / pairs;
    rejected += r[pairs + i].value / pairs;
  }
  const out = record(Tensor.from([loss.value], [1], 'f32'), 'rewardLoss', [rewards], (g) =>
    [Tensor.from(r.map((x) => g.data[0] * x.grad), rewards.shape, 'f32')]);
  return { loss: out, accuracy: correct / pairs, chosen, rejected };
}

function rewardModelling(model: CausalLM, set: ProcessedSet, c: TrainConfig, padId: number): Objective {
  if (set.kind !== 'pairwise') throw new LmfError('internal', 'reward modelling needs pairwise data');
  const plan = planUnits(set.pairs, c.per_device_train_batch_size, c.seed, (p) => collatePairs(p, padId));
  const head = ValueHead.create(model.config.hiddenSize, c.seed);
  for (const [, p] of head.parameters()) p.requiresGrad = true;
  const forward = (b: PairBatch) => head.scores(model.hidden(b.input), lastTokenRows(b.input.seq, b.lengths));
  return {
    parameters: head.parameters(),
    save: (dir) => head.save(dir),
    batchesPerEpoch: plan.batchesPerEpoch,
    epoch: (e) => plan.epoch(e),
    step(microRaw, microIndex) {
      const micro = microRaw as PairBatch[];
      let loss = 0, accuracy = 0, chosen = 0, rejected = 0;
      micro.forEach((b, k) => withScope(() => {
        microIndex(k);
        const r = rewardLossOp(forward(b), b.pairs);
        loss += r.loss.data[0] / micro.length;
        accuracy += r.accuracy / micro.length;
        chosen += r.chosen / micro.length;
        rejected += r.rejected / micro.length;
        backward(r.loss, Tensor.from([1 / micro.length], [1], 'f32'));
      }));
      return { loss, tokens: micro.reduce((a, b) => a + b.input.batch * b.input.seq, 0), metrics: { accuracy, 'rewards/chosen': chosen, 'rewards/rejected': rejected } };
    },
    evaluation: {
      // for a reward model the headline figure is the share of pairs ranked right
      batches: (evalSet) => pairEvalBatches(evalSet, c, padId),
      score(batches) {
        let correct = 0, pairs = 0, loss = 0;
        noGrad(() => {
          for (const b of batches as PairBatch[]) {
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

/** The reference model's forward: the policy with LoRA switched off, or a separate frozen model. */
function referenceLogps(model: CausalLM, refModel: CausalLM | null, setup: MethodSetup, input: TokenBatch, targets: Int32Array): Float32Array {
  return noGrad(() => withScope(() => {
    if (!refModel) setLoraEnabled(setup.lora!.layers, false);
    try {
      return Float32Array.from((refModel ?? model).tokenLogProbs(input, targets).data);
    } finally {
      if (!refModel) setLoraEnabled(setup.lora!.layers, true);
    }
  }));
}

function loadReference(c: TrainConfig, setup: MethodSetup): CausalLM | null {
  return setup.lora && !c.ref_model ? null : loadModel(c.ref_model ?? c.model_name_or_path, { dtype: c.bf16 ? 'bf16' : 'f32' }).model;
}

interface KtoBatch {
  input: TokenBatch;
  targets: Int32Array;
  /** examples (rows 0..n-1) then their mismatched KL pairs (rows n..2n-1) */
  n: number;
  desirable: boolean[];
}

/** KTO: desirable and undesirable answers against the reference, with TRL's KL estimate from mismatched pairs. */
function kto(model: CausalLM, set: ProcessedSet, c: TrainConfig, padId: number, setup: MethodSetup): Objective {
  if (set.kind !== 'kto') throw new LmfError('internal', 'kto training needs kto data');
  const collate = (items: Extract<ProcessedSet, { kind: 'kto' }>['examples']): KtoBatch => {
    const input = padBatch([...items.map((e) => e.example), ...items.map((e) => e.kl)], padId);
    return { input, targets: shiftLabels(input.labels, input.batch, input.seq), n: items.length, desirable: items.map((e) => e.desirable) };
  };
  const plan = planUnits(set.examples, c.per_device_train_batch_size, c.seed, collate);
  const refModel = loadReference(c, setup);
  const settings = { beta: c.pref_beta, desirableWeight: c.kto_chosen_weight, undesirableWeight: c.kto_rejected_weight };
  /** the loss of one micro-batch (a graph op), its KL estimate, and each example's implicit reward */
  const batchLoss = (b: KtoBatch): { loss: Tensor<'f32'>; kl: number; rewards: number[] } => {
    const T = b.input.seq;
    const ref = sequenceLogps(referenceLogps(model, refModel, setup, b.input, b.targets), b.targets, 2 * b.n, T).sums;
    const logp = model.tokenLogProbs(b.input, b.targets);
    const pol = sequenceLogps(logp.data, b.targets, 2 * b.n, T).sums;
    // the KL term: mean log-ratio on the mismatched pairs, without gradient (TRL)
    const klEstimate = pol.slice(b.n).reduce((a, v, i) => a + v - ref[b.n + i], 0) / b.n;
    const ratios = Array.from({ length: b.n }, (_, i) => Scalar.of(pol[i] - ref[i]));
    const l = ktoLoss(ratios.map((logratio, i) => ({ logratio, desirable: b.desirable[i] })), klEstimate, settings);
    l.backward();
    const loss = record(Tensor.from([l.value], [1], 'f32'), 'ktoLoss', [logp], (g) => {
      const d = Tensor.zeros(logp.shape, 'f32');
      for (let r = 0; r < b.n; r++) for (let t = 0; t < T; t++) if (b.targets[r * T + t] >= 0) d.data[r * T + t] = g.data[0] * ratios[r].grad;
      return [d];
    });
    return { loss, kl: Math.max(0, klEstimate), rewards: ratios.map((r) => c.pref_beta * r.value) };
  };
  return {
    batchesPerEpoch: plan.batchesPerEpoch,
    epoch: (e) => plan.epoch(e),
    step(microRaw, microIndex) {
      const micro = microRaw as KtoBatch[];
      let loss = 0, kl = 0;
      micro.forEach((b, k) => withScope(() => {
        microIndex(k);
        const r = batchLoss(b);
        loss += r.loss.data[0] / micro.length;
        kl += r.kl / micro.length;
        backward(r.loss, Tensor.from([1 / micro.length], [1], 'f32'));
      }));
      return { loss, tokens: micro.reduce((a, b) => a + b.input.batch * b.input.seq, 0), metrics: { kl } };
    },
    evaluation: {
      batches: (evalSet) => {
        if (evalSet.kind !== 'kto') throw new LmfError('internal', `cannot evaluate ${evalSet.kind} data with kto`);
        return planUnits(evalSet.examples, c.per_device_eval_batch_size, c.seed, collate).epoch(0);
      },
      score(batches) {
        let loss = 0, kl = 0, n = 0;
        const chosen: number[] = [], rejected: number[] = [];
        noGrad(() => {
          for (const b of batches as KtoBatch[]) {
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
        return { eval_loss: loss / Math.max(1, n), eval_kl: kl / Math.max(1, n), 'eval_rewards/chosen': mean(chosen), 'eval_rewards/rejected': mean(rejected),
          'eval_rewards/margins': mean(chosen) - mean(rejected) };
      },
    },
    dispose: () => refModel?.dispose(),
  };
}

function preference(model: CausalLM, set: ProcessedSet, c: TrainConfig, padId: number, setup: MethodSetup): Objective {
  if (set.kind !== 'pairwise') throw new LmfError('internal', 'preference training needs pairwise data');
  const plan = planUnits(set.pairs, c.per_device_train_batch_size, c.seed, (p) => collatePairs(p, padId));
  const referenceFree = c.pref_loss === 'orpo' || c.pref_loss === 'simpo';
  // LoRA: the reference is the same model with the adapters off; otherwise a frozen copy (or ref_model)
  const refModel = referenceFree ? null : loadReference(c, setup);
  const referenceValues = (b: PairBatch): { chosen: Float64Array; rejected: Float64Array } | undefined => {
    if (referenceFree) return undefined;
    const { sums, counts } = sequenceLogps(referenceLogps(model, refModel, setup, b.input, b.targets), b.targets, 2 * b.pairs, b.input.seq);
    const values = sums.map((v, r) => (averaged(c.pref_loss) ? v / Math.max(1, counts[r]) : v));
    return { chosen: Float64Array.from(values.slice(0, b.pairs)), rejected: Float64Array.from(values.slice(b.pairs)) };
  };
  const settings = { loss: c.pref_loss, beta: c.pref_beta, labelSmoothing: c.dpo_label_smoothing, simpoGamma: c.simpo_gamma, ftx: c.pref_ftx };
  /** the loss of one micro-batch (a graph op) and its pairs' statistics added into `sums` */
  const pairLoss = (b: PairBatch, sums: Record<string, number>): Tensor<'f32'> => {
    const ref = referenceValues(b);
    const logp = model.tokenLogProbs(b.input, b.targets);
    const { loss, stats } = preferenceLossOp(logp, { targets: b.targets, pairs: b.pairs, seq: b.input.seq, refChosen: ref?.chosen, refRejected: ref?.rejected }, settings);
    for (let i = 0; i < b.pairs; i++) {
      sums['rewards/chosen'] += stats.rewardsChosen[i];
      sums['rewards/rejected'] += stats.rewardsRejected[i];
      sums['rewards/accuracies'] += stats.rewardsChosen[i] > stats.rewardsRejected[i] ? 1 : 0;
      sums['logps/chosen'] += stats.chosen[i];
      sums['logps/rejected'] += stats.rejected[i];
    }
    return loss;
  };
  const emptySums = (): Record<string, number> => ({ 'rewards/chosen': 0, 'rewards/rejected': 0, 'rewards/accuracies': 0, 'logps/chosen': 0, 'logps/rejected': 0 });
  const means = (sums: Record<string, number>, pairs: number): Record<string, number> => {
    const metrics = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / Math.max(1, pairs)]));
    metrics['rewards/margins'] = metrics['rewards/chosen'] - metrics['rewards/rejected'];
    return metrics;
  };
  return {
    batchesPerEpoch: plan.batchesPerEpoch,
    epoch: (e) => plan.epoch(e),
    step(microRaw, microIndex) {
      const micro = microRaw as PairBatch[];
      const sums = emptySums();
      let loss = 0, pairs = 0;
      micro.forEach((b, k) => withScope(() => {
        microIndex(k);
        const l = pairLoss(b, sums);
        loss += l.data[0] / micro.length;
        backward(l, Tensor.from([1 / micro.length], [1], 'f32'));
        pairs += b.pairs;
      }));
      return { loss, tokens: micro.reduce((a, b) => a + b.input.batch * b.input.seq, 0), metrics: means(sums, pairs) };
    },
    evaluation: {
      batches: (evalSet) => pairEvalBatches(evalSet, c, padId),
      score(batches) {
        const sums = emptySums();
        let loss = 0, pairs = 0;
        noGrad(() => {
          for (const b of batches as PairBatch[]) withScope(() => { loss += pairLoss(b, sums).data[0] * b.pairs; pairs += b.pairs; });
        });
        const metrics = means(sums, pairs);
        return { eval_loss: loss / Math.max(1, pairs), ...Object.fromEntries(Object.entries(metrics).map(([k, v]) => [`eval_${k}`, v])) };
      },
    },
    dispose() {
      refModel?.dispose();
    },
  };
}

function pairEvalBatches(evalSet: ProcessedSet, c: TrainConfig, padId: number): PairBatch[] {
  if (evalSet.kind !== 'pairwise') throw new LmfError('internal', `cannot evaluate ${evalSet.kind} data with pairs`);
  return planUnits(evalSet.pairs, c.per_device_eval_batch_size, c.seed, (p) => collatePairs(p, padId)).epoch(0);
}

export function makeObjective(model: CausalLM, set: ProcessedSet, c: TrainConfig, padId: number, setup: MethodSetup): Objective {
  switch (c.stage) {
    case 'pt':
    case 'sft': return languageModelling(model, set, c, padId);
    case 'rm': return rewardModelling(model, set, c, padId);
    case 'dpo': return preference(model, set, c, padId, setup);
    case 'kto': return kto(model, set, c, padId, setup);
  }
}
