/**
 * Choosing the next token from a row of logits, with Hugging Face's processors in Hugging Face's order:
 * repetition penalty, temperature, top-k, top-p, then a draw from a seeded generator (or argmax when not
 * sampling). The draw walks the kept tokens by id: a seed gives one answer, every kept token its share.
 */
import { native } from '../native.js';
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

/**
 * The next token: greedy (argmax after the repetition penalty) when not sampling, else one native pass over the
 * vocabulary (src/native: penalty, temperature, top-k, top-p by partial selection, the seeded draw).
 */
export function chooseToken(logits: Float32Array, context: ReadonlySet<number>, p: SamplingParams, rng: Rng): number {
  if (!p.doSample || p.temperature <= 0) {
    return argmax(p.repetitionPenalty !== 1 ? penalised(logits, context, p.repetitionPenalty) : logits);
  }
  const seen =
    p.repetitionPenalty !== 1 ? Int32Array.from([...context].filter((v) => v >= 0 && v < logits.length)) : null;
  return native.sampleToken(
    logits,
    logits.length,
    seen,
    p.repetitionPenalty,
    p.temperature,
    p.topK,
    p.topP,
    rng.uniform(),
  );
}

function penalised(logits: Float32Array, context: ReadonlySet<number>, penalty: number): Float32Array {
  const out = Float32Array.from(logits);
  for (const v of context) if (v >= 0 && v < out.length) out[v] = out[v] < 0 ? out[v] * penalty : out[v] / penalty;
  return out;
}

/** The first id of the best score (one native pass in vector lanes). */
export function argmax(scores: Float32Array): number {
  return native.argmax(scores, scores.length);
}
