/**
 * Rotary position embeddings: the rope_scaling block of config.json, the inverse frequencies each rope type
 * implies (computed in f32 steps as Hugging Face's rope init functions compute them), and LLaMA-Factory's
 * `rope_scaling` training key, which rewrites a model's config to stretch its context.
 */
import { z } from 'zod';
import { LmfError } from '../errors.js';
import type { RopeScalingKind } from '../wire.js';

export const ropeScalingSchema = z
  .object({
    rope_type: z.string().optional(),
    type: z.string().optional(),
    factor: z.number().optional(),
    low_freq_factor: z.number().optional(),
    high_freq_factor: z.number().optional(),
    original_max_position_embeddings: z.number().optional(),
    short_factor: z.array(z.number()).optional(),
    long_factor: z.array(z.number()).optional(),
    attention_factor: z.number().optional(),
    beta_fast: z.number().nullish(),
    beta_slow: z.number().nullish(),
    mscale: z.number().nullish(),
    mscale_all_dim: z.number().nullish(),
    truncate: z.boolean().optional(),
  })
  .loose();

export type RopeScaling = z.infer<typeof ropeScalingSchema>;

/** Rotary frequencies: base and scaling (null: the default frequencies). */
export interface RopeSpec {
  theta: number;
  scaling: RopeScaling | null;
  /** values of each head that rotate (Phi-3's partial_rotary_factor; the head dim otherwise) */
  rotaryDim: number;
}

/** The rope type a scaling block names ('default' when none). */
export function ropeType(s: RopeScaling | null): string {
  return s ? (s.rope_type ?? s.type ?? 'default') : 'default';
}

/** Refuses a rope type the engine does not compute, by name. */
export function checkRopeType(s: RopeScaling | null, supported: readonly string[], file: string): void {
  const kind = ropeType(s);
  if (kind !== 'default' && !supported.includes(kind)) {
    throw new LmfError('bad_model_config', `rope_scaling type "${kind}" is not supported by this model family`, {
      file,
      key: 'rope_scaling',
      hint: `supported: ${supported.join(', ')}`,
    });
  }
}

const f = Math.fround;

/** theta^(2i/dim) for each rotary pair, in f32 as torch computes `base ** (arange(0, dim, 2) / dim)`. */
function positionFrequencies(theta: number, dim: number): Float32Array {
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < out.length; i++) out[i] = f(f(theta) ** f((2 * i) / dim));
  return out;
}

function inverse(freqs: Float32Array, factor = 1): Float32Array {
  return freqs.map((p) => f(1 / f(factor * p)));
}

/**
 * Rotary inverse frequencies [rotaryDim/2] and the factor cos and sin are multiplied by, as Hugging Face's rope
 * init functions compute them for a sequence of `seqLen` positions (dynamic NTK grows its base past the
 * context; longrope picks its short or long factors by length).
 */
export function ropeInvFreq(
  r: RopeSpec,
  c: { maxPositions: number },
  seqLen = 0,
): { inv: Float32Array; attentionFactor: number } {
  const dim = r.rotaryDim;
  const s = r.scaling;
  const kind = ropeType(s);
  const plain = inverse(positionFrequencies(r.theta, dim));
  if (!s || kind === 'default') return { inv: plain, attentionFactor: 1 };
  const factor = s.factor ?? 1;
  switch (kind) {
    case 'linear':
      return { inv: plain.map((v) => f(v / factor)), attentionFactor: 1 };
    case 'dynamic':
      return { inv: dynamicNtk(r, factor, c.maxPositions, seqLen), attentionFactor: 1 };
    case 'yarn':
      return yarn(r, s, c.maxPositions);
    case 'longrope':
      return longrope(r, s, c.maxPositions, seqLen);
    case 'llama3':
      return { inv: llama3(plain, s, factor), attentionFactor: 1 };
    default:
      throw new Error(`rope type ${kind} has no frequencies`);
  }
}

/** Dynamic NTK: past max_position_embeddings the base grows with the sequence; below it, the default frequencies. */
function dynamicNtk(r: RopeSpec, factor: number, maxPositions: number, seqLen: number): Float32Array {
  const dim = r.rotaryDim;
  const len = Math.max(seqLen, maxPositions);
  const base = r.theta * ((factor * len) / maxPositions - (factor - 1)) ** (dim / (dim - 2));
  return inverse(positionFrequencies(base, dim));
}

/**
 * YaRN: frequencies that turn fewer than beta_slow times over the original context are interpolated (divided by
 * factor), those that turn more than beta_fast times are kept, a linear ramp between; cos and sin scaled by
 * 0.1·ln(factor) + 1 (or the mscale ratio, or attention_factor).
 */
function yarn(r: RopeSpec, s: RopeScaling, maxPositions: number): { inv: Float32Array; attentionFactor: number } {
  const dim = r.rotaryDim;
  const original = s.original_max_position_embeddings ?? maxPositions;
  const factor = s.factor ?? maxPositions / original;
  const mscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
  const attentionFactor =
    s.attention_factor ??
    (s.mscale && s.mscale_all_dim ? mscale(factor, s.mscale) / mscale(factor, s.mscale_all_dim) : mscale(factor));
  // the dimension whose frequency turns `turns` times over the original context
  const dimFor = (turns: number) => (dim * Math.log(original / (turns * 2 * Math.PI))) / (2 * Math.log(r.theta));
  let low = dimFor(s.beta_fast ?? 32);
  let high = dimFor(s.beta_slow ?? 1);
  if (s.truncate ?? true) [low, high] = [Math.floor(low), Math.ceil(high)];
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const freqs = positionFrequencies(r.theta, dim);
  const extrapolated = inverse(freqs);
  const interpolated = inverse(freqs, factor);
  const inv = new Float32Array(dim / 2);
  for (let i = 0; i < inv.length; i++) {
    const ramp = Math.min(1, Math.max(0, f(f(i - low) / f(high - low))));
    const keep = f(1 - ramp);
    inv[i] = f(f(interpolated[i] * f(1 - keep)) + f(extrapolated[i] * keep));
  }
  return { inv, attentionFactor };
}

/** Phi-3's longrope: per-frequency factors, short or long by sequence length, and an attention factor. */
function longrope(
  r: RopeSpec,
  s: RopeScaling,
  maxPositions: number,
  seqLen: number,
): { inv: Float32Array; attentionFactor: number } {
  // Phi-3 keeps the pretrained length beside max_position_embeddings; the ratio is the extension factor
  const original = s.original_max_position_embeddings ?? maxPositions;
  const extension = s.original_max_position_embeddings ? maxPositions / original : (s.factor ?? 1);
  const attentionFactor =
    s.attention_factor ?? (extension <= 1 ? 1 : Math.sqrt(1 + Math.log(extension) / Math.log(original)));
  const ext = seqLen > original ? s.long_factor : s.short_factor;
  const dim = r.rotaryDim;
  if (!ext || ext.length !== dim / 2) throw new Error(`longrope factors must have ${dim / 2} entries`);
  const freqs = positionFrequencies(r.theta, dim);
  return { inv: freqs.map((p, i) => f(1 / f(f(ext[i]) * p))), attentionFactor };
}

/** Llama 3.1: long wavelengths divided by factor, short ones kept, a smooth blend between. */
function llama3(plain: Float32Array, s: RopeScaling, factor: number): Float32Array {
  const lo = s.low_freq_factor ?? 1;
  const hi = s.high_freq_factor ?? 4;
  const old = s.original_max_position_embeddings ?? 8192;
  const loWl = old / lo;
  const hiWl = old / hi;
  return plain.map((v) => {
    const wl = (2 * Math.PI) / v;
    if (wl < hiWl) return v;
    if (wl > loWl) return f(v / factor);
    const smooth = (old / wl - lo) / (hi - lo);
    return f((1 - smooth) * (v / factor) + smooth * v);
  });
}

/**
 * LLaMA-Factory's rope_scaling key applied to a config.json: training with a cutoff_len past the model's
 * context (its original_max_position_embeddings, else max_position_embeddings) stretches it by
 * ceil(cutoff_len / context); at inference (no cutoff) by 2. The stretched length becomes max_position_embeddings
 * and the scaling block is replaced. Returns null (with the reason) when nothing changes.
 */
export function stretchContext(
  raw: Record<string, unknown>,
  kind: RopeScalingKind,
  modelMaxLength: number | null,
): { raw: Record<string, unknown>; message: string } | { raw: null; message: string } {
  const current = ropeScalingSchema.nullish().safeParse(raw.rope_scaling);
  const original =
    (current.success ? current.data?.original_max_position_embeddings : undefined) ??
    (typeof raw.max_position_embeddings === 'number' ? raw.max_position_embeddings : null);
  if (original === null) return { raw: null, message: 'rope_scaling: config.json has no max_position_embeddings' };
  if (modelMaxLength !== null && modelMaxLength <= original) {
    return {
      raw: null,
      message: `rope_scaling: cutoff_len ${modelMaxLength} fits the model's context of ${original}; no scaling`,
    };
  }
  const factor = modelMaxLength === null ? 2 : Math.ceil(modelMaxLength / original);
  const scaling: Record<string, unknown> = { rope_type: kind, factor };
  if (kind !== 'linear') scaling.original_max_position_embeddings = original;
  if (kind === 'llama3') Object.assign(scaling, { low_freq_factor: 1, high_freq_factor: 4 });
  const caution = kind === 'dynamic' && modelMaxLength !== null ? ' (dynamic NTK may not fine-tune well)' : '';
  return {
    raw: { ...raw, max_position_embeddings: original * factor, rope_scaling: scaling },
    message: `rope_scaling: ${kind} scaling by ${factor}, context ${original} → ${original * factor}${caution}`,
  };
}
