/**
 * The reward model's loss: rewards [2P] (chosen answers, then rejected) go in; out comes
 * -mean log sigmoid(r_chosen - r_rejected), with the share of pairs ranked right and the mean rewards.
 */
import { record } from '../autograd.js';
import { rewardLoss } from '../pair-losses.js';
import { Scalar } from '../scalar.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';

export interface RewardLoss {
  loss: Tensor<'f32'>;
  accuracy: number;
  chosen: number;
  rejected: number;
}

export function rewardLossOp(rewards: Tensor<'f32'>, pairs: number): RewardLoss {
  if (rewards.size !== 2 * pairs) throw new Error(`rewardLoss: ${rewards.size} rewards for ${pairs} pairs`);
  const r = Array.from(rewards.data, (v) => Scalar.of(v));
  const loss = rewardLoss(Array.from({ length: pairs }, (_, i) => ({ chosen: r[i], rejected: r[pairs + i] })));
  loss.backward();
  let correct = 0,
    chosen = 0,
    rejected = 0;
  for (let i = 0; i < pairs; i++) {
    if (r[i].value > r[pairs + i].value) correct++;
    chosen += r[i].value / pairs;
    rejected += r[pairs + i].value / pairs;
  }
  const out = record(Tensor.from([loss.value], [1], 'f32'), 'rewardLoss', [rewards], (g) => [
    Tensor.from(
      r.map((x) => g.data[0] * x.grad),
      rewards.shape,
      'f32',
    ),
  ]);
  return { loss: out, accuracy: correct / pairs, chosen, rejected };
}

export const rewardLossSpec: OpSpec = {
  inputs: [[6]],
  apply: ([rewards]) => rewardLossOp(rewards, 3).loss,
  reference: ([r]) => {
    let loss = 0;
    for (let i = 0; i < 3; i++) loss += Math.log1p(Math.exp(-(r[i] - r[3 + i])));
    return Float64Array.of(loss / 3);
  },
};
