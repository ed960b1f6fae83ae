/**
 * KTO's loss (TRL's): the policy's per-token log-probabilities of a batch [n examples; their n mismatched KL
 * pairs] go in, with the reference model's sequence sums. Each example's log-ratio is its answer's summed
 * log-probability minus the reference's; the KL term is the mismatched pairs' mean log-ratio, clamped at 0 and
 * without gradient (as TRL detaches it).
 */
import { record } from '../autograd.js';
import { ktoLoss, type KtoSettings } from '../pair-losses.js';
import { Scalar } from '../scalar.js';
import { Tensor } from '../tensor.js';
import { sequenceLogps } from './preference-loss.js';
import type { OpSpec } from './spec.js';

export interface KtoBatchValues {
  /** shifted targets [2n * T]: examples, then their KL pairs */
  targets: Int32Array;
  n: number;
  seq: number;
  /** the reference model's sequence sums [2n] */
  refSums: number[];
  desirable: boolean[];
}

export interface KtoLoss {
  loss: Tensor<'f32'>;
  /** the KL estimate (clamped at 0) */
  kl: number;
  /** beta * log-ratio per example: the implicit rewards */
  rewards: number[];
}

export function ktoLossOp(tokenLogp: Tensor<'f32'>, b: KtoBatchValues, s: KtoSettings): KtoLoss {
  const { n, seq: T } = b;
  const pol = sequenceLogps(tokenLogp.data, b.targets, 2 * n, T).sums;
  const klEstimate = pol.slice(n).reduce((a, v, i) => a + v - b.refSums[n + i], 0) / n;
  const ratios = Array.from({ length: n }, (_, i) => Scalar.of(pol[i] - b.refSums[i]));
  const l = ktoLoss(
    ratios.map((logratio, i) => ({ logratio, desirable: b.desirable[i] })),
    klEstimate,
    s,
  );
  l.backward();
  const loss = record(Tensor.from([l.value], [1], 'f32'), 'ktoLoss', [tokenLogp], (g) => {
    const d = Tensor.zeros(tokenLogp.shape, 'f32');
    for (let r = 0; r < n; r++)
      for (let t = 0; t < T; t++) if (b.targets[r * T + t] >= 0) d.data[r * T + t] = g.data[0] * ratios[r].grad;
    return [d];
  });
  return { loss, kl: Math.max(0, klEstimate), rewards: ratios.map((r) => s.beta * r.value) };
}

// The example's KL pairs lie far below their reference, so the clamped KL term is 0 around it: the detached
// term then has no gradient to miss, and finite differences see the same function as the backward pass.
const specBatch: KtoBatchValues = {
  targets: Int32Array.from({ length: 4 * 5 }, (_, i) => (i % 5 >= 2 ? 3 : -100)),
  n: 2,
  seq: 5,
  refSums: [-1.5, 0.7, 40, 40],
  desirable: [true, false],
};
const specSettings: KtoSettings = { beta: 0.3, desirableWeight: 1.2, undesirableWeight: 0.8 };

export const ktoLossSpec: OpSpec = {
  inputs: [[4, 5]],
  apply: ([logp]) => ktoLossOp(logp, specBatch, specSettings).loss,
  reference: ([logp]) => {
    const sums = [0, 0, 0, 0];
    specBatch.targets.forEach((t, i) => {
      if (t >= 0) sums[(i / 5) | 0] += logp[i];
    });
    const kl = Math.max(0, (sums[2] - 40 + (sums[3] - 40)) / 2);
    const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
    const { beta, desirableWeight: wd, undesirableWeight: wu } = specSettings;
    const desirable = wd * (1 - sigmoid(beta * (sums[0] - specBatch.refSums[0] - kl)));
    const undesirable = wu * (1 - sigmoid(beta * (kl - (sums[1] - specBatch.refSums[1]))));
    return Float64Array.of((desirable + undesirable) / 2);
  },
};
