/**
 * `lmf bench --mode generate`: prefill and decode speed with KV caches, greedy, on a preset shape or a model
 * folder. Prefill: one call over the prompt (cold, then warm); decode: one token per call per sequence, timed
 * after the first.
 */
import { adaptThreads } from '../threads.js';
import { initModel, presetConfig } from '../models/init.js';
import { presets } from '../models/presets.js';
import { quantizeFor } from '../models/quant/quantize.js';
import { loadModel } from '../models/registry.js';
import { native } from '../native.js';
import { noGrad } from '../tensor/autograd.js';
import { Rng } from '../tensor/random.js';
import { withScope } from '../tensor/tensor.js';
import { chooseToken } from '../infer/sampling.js';

export interface GenerateBenchOptions {
  model: string;
  dtype: 'f32' | 'bf16';
  /** prompt tokens per sequence */
  seq: number;
  batch: number;
  newTokens: number;
  /** sampling (LLaMA-Factory's defaults: temperature 0.95, top_p 0.7); greedy when temperature is 0 */
  temperature?: number;
  topP?: number;
  topK?: number;
  /** the projections in 4-bit NF4 (double quantization) or 8-bit int8, as `quantization_bit` serves them */
  quantizationBit?: 4 | 8;
}

export interface GenerateBenchResult {
  model: string;
  mode: 'generate';
  dtype: string;
  quantization_bit: number | null;
  prompt_tokens: number;
  batch: number;
  new_tokens: number;
  threads: number;
  prefill_tokens_per_s: number;
  /** the first prefill of this length, building its matmul primitives */
  prefill_cold_tokens_per_s: number;
  decode_tokens_per_s: number;
  decode_ms_per_step: number;
  /** sampling settings, and the time choosing each token took (inside decode_ms_per_step) */
  sampling: string;
  sample_ms_per_token: number;
}

export function runGenerateBench(o: GenerateBenchOptions): GenerateBenchResult {
  const quantize = quantizeFor(o.quantizationBit ?? null, 'nf4', true, o.dtype);
  const model =
    o.model in presets
      ? initModel(presetConfig(o.model), o.dtype, 0, 0.02, quantize)
      : loadModel(o.model, { dtype: o.dtype, quantize }).model;
  try {
    const rng = new Rng(0);
    const V = model.config.vocabSize;
    const prompts = Array.from({ length: o.batch }, () => Array.from({ length: o.seq }, () => rng.int(V)));
    let caches = prompts.map(() => model.newCache());
    const temperature = o.temperature ?? 0;
    const params = {
      doSample: temperature > 0,
      temperature,
      topP: o.topP ?? 1,
      topK: o.topK ?? 0,
      repetitionPenalty: 1,
    };
    const noContext = new Set<number>();
    const draws = new Rng(1);
    let sampleMs = 0;
    const run = (tokens: number[][]): number[] =>
      noGrad(() =>
        withScope(() => {
          adaptThreads();
          const logits = model.extend(tokens, caches);
          const t = performance.now();
          const next = tokens.map((_, s) =>
            chooseToken(logits.data.subarray(s * V, (s + 1) * V), noContext, params, draws),
          );
          sampleMs += performance.now() - t;
          return next;
        }),
      );
    // the first prompt of a length builds its matmul primitives (cold); a server has seen the length before (warm)
    const tCold = performance.now();
    run(prompts);
    const cold = (performance.now() - tCold) / 1000;
    caches = prompts.map(() => model.newCache());
    const t0 = performance.now();
    let next = run(prompts);
    const prefill = (performance.now() - t0) / 1000;
    next = run(next.map((t) => [t])); // the first decode step warms the one-row matmul primitives
    sampleMs = 0;
    const t1 = performance.now();
    for (let i = 1; i < o.newTokens; i++) next = run(next.map((t) => [t]));
    const decode = (performance.now() - t1) / 1000;
    const steps = Math.max(1, o.newTokens - 1);
    return {
      model: o.model,
      mode: 'generate',
      quantization_bit: o.quantizationBit ?? null,
      dtype: o.dtype,
      prompt_tokens: o.seq,
      batch: o.batch,
      new_tokens: o.newTokens,
      threads: native.info().threads,
      prefill_tokens_per_s: round((o.batch * o.seq) / prefill),
      prefill_cold_tokens_per_s: round((o.batch * o.seq) / cold),
      decode_tokens_per_s: round((o.batch * steps) / decode),
      decode_ms_per_step: round((1000 * decode) / steps),
      sampling: params.doSample ? `temperature ${temperature}, top_p ${params.topP}, top_k ${params.topK}` : 'greedy',
      sample_ms_per_token: Math.round((1000 * sampleMs) / (steps * o.batch)) / 1000,
    };
  } finally {
    model.dispose();
  }
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
