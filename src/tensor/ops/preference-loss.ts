/**
 * The preference-loss op: the policy's per-token log-probabilities of a batch [chosen rows; rejected rows]
 * go in; each sequence's value is the sum (sigmoid, hinge) or the per-token average (ipo, orpo, simpo) over
 * its answer tokens; pair-losses.ts turns those into the loss, and its per-sequence gradient is spread
 * back over each sequence's tokens.
 */
import { record } from '../autograd.js';
import { preferenceLoss, type PairValues, type PrefSettings } from '../pair-losses.js';
import { Scalar } from '../scalar.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';

export interface PreferenceBatch {
  /** shifted targets [2P * T]: rows 0..P-1 chosen, P..2P-1 rejected */
  targets: Int32Array;
  pairs: number;
  seq: number;
  /** the reference model's sequence values, chosen then rejected ([P] each); absent for orpo and simpo */
  refChosen?: Float64Array;
  refRejected?: Float64Array;
}

export interface PreferenceStats {
  chosen: number[];
  rejected: number[];
  /** beta * (policy - reference), per pair (beta * policy without a reference) */
  rewardsChosen: number[];
  rewardsRejected: number[];
}

/** Sum of log p over each row's answer tokens, and how many there are. */
export function sequenceLogps(
  logp: Float32Array,
  targets: Int32Array,
  rows: number,
  seq: number,
): { sums: number[]; counts: number[] } {
  const sums = new Array<number>(rows).fill(0),
    counts = new Array<number>(rows).fill(0);
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < seq; t++) {
      if (targets[r * seq + t] < 0) continue;
      sums[r] += logp[r * seq + t];
      counts[r]++;
    }
  }
  return { sums, counts };
}

export function averaged(loss: PrefSettings['loss']): boolean {
  return loss === 'ipo' || loss === 'orpo' || loss === 'simpo';
}

export function preferenceLossOp(
  tokenLogp: Tensor<'f32'>,
  b: PreferenceBatch,
  s: PrefSettings,
): { loss: Tensor<'f32'>; stats: PreferenceStats } {
  const P = b.pairs;
  const { sums, counts } = sequenceLogps(tokenLogp.data, b.targets, 2 * P, b.seq);
  const avg = averaged(s.loss);
  const rows = sums.map((v, r) => Scalar.of(avg ? v / Math.max(1, counts[r]) : v));
  const pairs: PairValues[] = Array.from({ length: P }, (_, i) => ({
    chosen: rows[i],
    rejected: rows[P + i],
    refChosen: b.refChosen?.[i],
    refRejected: b.refRejected?.[i],
    chosenAvg: avg ? rows[i] : undefined,
  }));
  if (s.ftx > 0 && !avg)
    pairs.forEach((p, i) => {
      p.chosenAvg = rows[i].mul(1 / Math.max(1, counts[i]));
    });
  const loss = preferenceLoss(pairs, s);
  loss.backward();
  const value = rows.map((r) => r.value);
  const stats: PreferenceStats = {
    chosen: value.slice(0, P),
    rejected: value.slice(P),
    rewardsChosen: value.slice(0, P).map((v, i) => s.beta * (v - (b.refChosen?.[i] ?? 0))),
    rewardsRejected: value.slice(P).map((v, i) => s.beta * (v - (b.refRejected?.[i] ?? 0))),
  };
  const out = record(Tensor.from([loss.value], [1], 'f32'), 'preferenceLoss', [tokenLogp], (g) => {
    const d = Tensor.zeros(tokenLogp.shape, 'f32');
    for (let r = 0; r < 2 * P; r++) {
      const perToken = (g.data[0] * rows[r].grad) / (avg ? Math.max(1, counts[r]) : 1);
      for (let t = 0; t < b.seq; t++) if (b.targets[r * b.seq + t] >= 0) d.data[r * b.seq + t] = perToken;
    }
    return [d];
  });
  return { loss: out, stats };
}

/** Targets of a small example: rows of 5 tokens, answers from position 2 on (row 1 one token shorter). */
function exampleTargets(rows: number, seq: number): Int32Array {
  return Int32Array.from({ length: rows * seq }, (_, i) =>
    i % seq >= 2 && !(((i / seq) | 0) === 1 && i % seq === seq - 1) ? 7 : -100,
  );
}

const specTargets = exampleTargets(4, 5);
const specRef = { refChosen: Float64Array.from([-3, -2.5]), refRejected: Float64Array.from([-2.8, -3.1]) };
const specSettings: PrefSettings = { loss: 'sigmoid', beta: 0.5, labelSmoothing: 0.1, simpoGamma: 0.5, ftx: 0.2 };

export const preferenceLossSpec: OpSpec = {
  inputs: [[4, 5]],
  apply: ([logp]) => preferenceLossOp(logp, { targets: specTargets, pairs: 2, seq: 5, ...specRef }, specSettings).loss,
  reference: ([logp]) => {
    const sums = [0, 0, 0, 0],
      counts = [0, 0, 0, 0];
    specTargets.forEach((t, i) => {
      if (t >= 0) {
        sums[(i / 5) | 0] += logp[i];
        counts[(i / 5) | 0]++;
      }
    });
    const logSigmoid = (x: number) => -Math.log1p(Math.exp(-x));
    let loss = 0;
    for (let i = 0; i < 2; i++) {
      const z = sums[i] - specRef.refChosen[i] - (sums[2 + i] - specRef.refRejected[i]);
      const s = specSettings;
      loss +=
        -(1 - s.labelSmoothing) * logSigmoid(s.beta * z) -
        s.labelSmoothing * logSigmoid(-s.beta * z) -
        (s.ftx * sums[i]) / counts[i];
    }
    return Float64Array.of(loss / 2);
  },
};
