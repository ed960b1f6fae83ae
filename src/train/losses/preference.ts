/**
 * Preference losses over sequence log-probabilities. The policy's per-token log-probabilities of a batch
 * [chosen rows; rejected rows] go in; each sequence's log-probability is the sum over its answer tokens
 * (targets >= 0). The loss is a pure function of those sums (and lengths), so its gradient with respect to
 * every token's log-probability is that of its sequence.
 */
import { record } from '../../tensor/autograd.js';
import { Tensor } from '../../tensor/tensor.js';

export interface PreferenceBatch {
  /** shifted targets [2P * T]: rows 0..P-1 chosen, P..2P-1 rejected */
  targets: Int32Array;
  pairs: number;
  seq: number;
  /** reference model's sequence log-probabilities, chosen then rejected ([P] each) */
  refChosen: Float64Array;
  refRejected: Float64Array;
}

export interface DpoSettings {
  beta: number;
  labelSmoothing: number;
}

export interface PreferenceStats {
  chosen: number[];
  rejected: number[];
  /** beta * (policy - reference), per pair */
  rewardsChosen: number[];
  rewardsRejected: number[];
}

function sequenceSums(logp: Float32Array, targets: Int32Array, rows: number, seq: number): number[] {
  const out = new Array<number>(rows).fill(0);
  for (let r = 0; r < rows; r++) for (let t = 0; t < seq; t++) if (targets[r * seq + t] >= 0) out[r] += logp[r * seq + t];
  return out;
}

const logSigmoid = (z: number) => (z >= 0 ? -Math.log1p(Math.exp(-z)) : z - Math.log1p(Math.exp(z)));
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/** DPO's sigmoid loss (with label smoothing, as TRL), mean over pairs; stats for the log. */
export function dpoSigmoidLoss(tokenLogp: Tensor<'f32'>, b: PreferenceBatch, s: DpoSettings): { loss: Tensor<'f32'>; stats: PreferenceStats } {
  const P = b.pairs;
  const sums = sequenceSums(tokenLogp.data, b.targets, 2 * P, b.seq);
  const chosen = sums.slice(0, P), rejected = sums.slice(P);
  const z = chosen.map((c, i) => s.beta * ((c - b.refChosen[i]) - (rejected[i] - b.refRejected[i])));
  const eps = s.labelSmoothing;
  const loss = z.reduce((a, zi) => a - (1 - eps) * logSigmoid(zi) - eps * logSigmoid(-zi), 0) / P;
  // dL/dz_i, then dz/dchosen = beta, dz/drejected = -beta
  const dz = z.map((zi) => (-(1 - eps) * sigmoid(-zi) + eps * sigmoid(zi)) / P);
  const out = Tensor.from([loss], [1], 'f32');
  const stats: PreferenceStats = {
    chosen, rejected,
    rewardsChosen: chosen.map((c, i) => s.beta * (c - b.refChosen[i])),
    rewardsRejected: rejected.map((r, i) => s.beta * (r - b.refRejected[i])),
  };
  const result = record(out, 'dpoSigmoidLoss', [tokenLogp], (g) => {
    const d = Tensor.zeros(tokenLogp.shape, 'f32');
    for (let r = 0; r < 2 * P; r++) {
      const perRow = g.data[0] * s.beta * (r < P ? dz[r] : -dz[r - P]);
      for (let t = 0; t < b.seq; t++) if (b.targets[r * b.seq + t] >= 0) d.data[r * b.seq + t] = perRow;
    }
    return [d];
  });
  return { loss: result, stats };
}
