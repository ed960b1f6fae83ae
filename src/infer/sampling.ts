/**
 * Choosing the next token from a row of logits, with Hugging Face's processors in Hugging Face's order:
 * repetition penalty, temperature, top-k, top-p, then a draw from a seeded generator (or argmax when not
 * sampling).
 */
import type { Rng } from '../tensor/random.js';

export interface SamplingParams {
  doSample: boolean;
  temperature: number;
  topP: number;
  /** 0: no top-k limit */
  topK: number;
  /** 1: none; >1 makes tokens already in the context less likely (CTRL's rule, as transformers) */
  repetitionPenalty: number;
}

/** Tokens further than this (in temperature-scaled logits) below the best hold under e^-30 of the mass each. */
const NEGLIGIBLE = 30;

export function chooseToken(logits: Float32Array, context: ReadonlySet<number>, p: SamplingParams, rng: Rng): number {
  const scores = p.repetitionPenalty !== 1 ? penalised(logits, context, p.repetitionPenalty) : logits;
  if (!p.doSample || p.temperature <= 0) return argmax(scores);
  let best = -Infinity;
  for (let v = 0; v < scores.length; v++) if (scores[v] > best) best = scores[v];
  const floor = best - NEGLIGIBLE * p.temperature;
  const candidates: number[] = [];
  for (let v = 0; v < scores.length; v++) if (scores[v] >= floor) candidates.push(v);
  candidates.sort((a, b) => scores[b] - scores[a] || a - b);
  const kept = p.topK > 0 ? candidates.slice(0, p.topK) : candidates;
  const weights = kept.map((v) => Math.exp((scores[v] - best) / p.temperature));
  const total = weights.reduce((a, w) => a + w, 0);
  // top-p: the smallest prefix whose mass reaches top_p (at least one token)
  let n = kept.length;
  if (p.topP < 1) {
    let mass = 0;
    for (let i = 0; i < kept.length; i++) {
      mass += weights[i] / total;
      if (mass >= p.topP) {
        n = i + 1;
        break;
      }
    }
  }
  const prefixMass = weights.slice(0, n).reduce((a, w) => a + w, 0);
  let u = rng.uniform() * prefixMass;
  for (let i = 0; i < n; i++) {
    u -= weights[i];
    if (u < 0) return kept[i];
  }
  return kept[n - 1];
}

function penalised(logits: Float32Array, context: ReadonlySet<number>, penalty: number): Float32Array {
  const out = Float32Array.from(logits);
  for (const v of context) if (v >= 0 && v < out.length) out[v] = out[v] < 0 ? out[v] * penalty : out[v] / penalty;
  return out;
}

export function argmax(scores: Float32Array): number {
  let best = 0;
  for (let v = 1; v < scores.length; v++) if (scores[v] > scores[best]) best = v;
  return best;
}
