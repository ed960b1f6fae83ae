/**
 * The preference losses of LLaMA-Factory's dpo stage and the reward model's pairwise loss, each written as its
 * formula over per-pair values (see Scalar for the gradients). Inputs are sequence log-probabilities: sums
 * over answer tokens for sigmoid/hinge (and the reference model's), per-token averages for ipo/orpo/simpo
 * (as LLaMA-Factory averages for those), or rewards for rm.
 */
import { mean, Scalar } from './scalar.js';

export type PrefLoss = 'sigmoid' | 'hinge' | 'ipo' | 'orpo' | 'simpo';

export interface PrefSettings {
  loss: PrefLoss;
  beta: number;
  labelSmoothing: number;
  simpoGamma: number;
  /** weight of the SFT loss on chosen answers (pref_ftx) */
  ftx: number;
}

export interface PairValues {
  chosen: Scalar;
  rejected: Scalar;
  /** reference model values (constants); absent for orpo and simpo */
  refChosen?: number;
  refRejected?: number;
  /** per-token average log-probability of the chosen answer (pref_ftx's SFT term) */
  chosenAvg?: Scalar;
}

export function pairLoss(p: PairValues, s: PrefSettings): Scalar {
  let loss: Scalar;
  switch (s.loss) {
    case 'sigmoid':
    case 'hinge':
    case 'ipo': {
      const z = p.chosen.sub(p.refChosen ?? 0).sub(p.rejected.sub(p.refRejected ?? 0));
      if (s.loss === 'sigmoid') {
        loss = z
          .mul(s.beta)
          .logSigmoid()
          .mul(-(1 - s.labelSmoothing))
          .sub(z.mul(-s.beta).logSigmoid().mul(s.labelSmoothing));
      } else if (s.loss === 'hinge') {
        loss = Scalar.of(1).sub(z.mul(s.beta)).relu();
      } else {
        loss = z.sub(1 / (2 * s.beta)).square();
      }
      break;
    }
    case 'orpo': {
      // log odds(chosen) - log odds(rejected), odds(p) = p / (1 - p)
      const logOdds = p.chosen.sub(p.rejected).sub(p.chosen.log1mExp().sub(p.rejected.log1mExp()));
      loss = p.chosen.neg().add(logOdds.logSigmoid().neg().mul(s.beta));
      break;
    }
    case 'simpo':
      loss = p.chosen
        .sub(p.rejected)
        .sub(s.simpoGamma / s.beta)
        .mul(s.beta)
        .logSigmoid()
        .neg();
      break;
  }
  if (s.ftx > 0 && s.loss !== 'orpo') loss = loss.add((p.chosenAvg ?? p.chosen).neg().mul(s.ftx));
  return loss;
}

export function preferenceLoss(pairs: PairValues[], s: PrefSettings): Scalar {
  return mean(pairs.map((p) => pairLoss(p, s)));
}

/** Reward model: -log sigmoid(r_chosen - r_rejected), mean over pairs. */
export function rewardLoss(pairs: { chosen: Scalar; rejected: Scalar }[]): Scalar {
  return mean(pairs.map((p) => p.chosen.sub(p.rejected).logSigmoid().neg()));
}

export interface KtoSettings {
  beta: number;
  desirableWeight: number;
  undesirableWeight: number;
}

/**
 * KTO (TRL): with kl the batch's mean log-ratio on mismatched pairs (clamped at 0, no gradient),
 * desirable: w_d (1 - sigmoid(beta (logratio - kl))), undesirable: w_u (1 - sigmoid(beta (kl - logratio))).
 */
export function ktoLoss(items: { logratio: Scalar; desirable: boolean }[], kl: number, s: KtoSettings): Scalar {
  const k = Math.max(0, kl);
  return mean(
    items.map((it) =>
      it.desirable
        ? Scalar.of(1).sub(it.logratio.sub(k).mul(s.beta).sigmoid()).mul(s.desirableWeight)
        : Scalar.of(1).sub(Scalar.of(k).sub(it.logratio).mul(s.beta).sigmoid()).mul(s.undesirableWeight),
    ),
  );
}
