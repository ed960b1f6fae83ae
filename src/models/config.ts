/**
 * config.json of LLaMA-family models (model_type llama, mistral, qwen2), parsed with Hugging Face's
 * defaults, and the rotary frequencies it implies (default, linear and llama3 rope_scaling).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { LmfError } from '../errors.js';
import { requireModelFolder } from '../io/dirs.js';

export const supportedModelTypes = ['llama', 'mistral', 'qwen2'] as const;

const ropeScalingSchema = z
  .object({
    rope_type: z.string().optional(),
    type: z.string().optional(),
    factor: z.number().optional(),
    low_freq_factor: z.number().optional(),
    high_freq_factor: z.number().optional(),
    original_max_position_embeddings: z.number().optional(),
  })
  .loose();

const rawConfigSchema = z
  .object({
    model_type: z.string(),
    vocab_size: z.number().int().positive(),
    hidden_size: z.number().int().positive(),
    intermediate_size: z.number().int().positive(),
    num_hidden_layers: z.number().int().positive(),
    num_attention_heads: z.number().int().positive(),
    num_key_value_heads: z.number().int().positive().nullish(),
    head_dim: z.number().int().positive().nullish(),
    rms_norm_eps: z.number().positive().optional(),
    rope_theta: z.number().positive().optional(),
    rope_scaling: ropeScalingSchema.nullish(),
    tie_word_embeddings: z.boolean().optional(),
    attention_bias: z.boolean().optional(),
    mlp_bias: z.boolean().optional(),
    hidden_act: z.string().optional(),
    pad_token_id: z.number().int().nullish(),
    bos_token_id: z.union([z.number().int(), z.array(z.number().int())]).nullish(),
    eos_token_id: z.union([z.number().int(), z.array(z.number().int())]).nullish(),
    max_position_embeddings: z.number().int().positive().optional(),
    sliding_window: z.number().int().positive().nullish(),
    use_sliding_window: z.boolean().optional(),
    torch_dtype: z.string().nullish(),
    pretraining_tp: z.number().int().optional(),
  })
  .loose();

export type RawModelConfig = z.infer<typeof rawConfigSchema>;

export interface ModelConfig {
  modelType: (typeof supportedModelTypes)[number];
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: z.infer<typeof ropeScalingSchema> | null;
  tieWordEmbeddings: boolean;
  /** q, k, v biases (Qwen2 always has them) */
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  padTokenId: number | null;
  eosTokenIds: number[];
  bosTokenId: number | null;
  maxPositions: number;
  /** Mistral-style sliding window, when the model uses one */
  slidingWindow: number | null;
  /** the file as read, written back unchanged (but for edits) when the model is saved */
  raw: Record<string, unknown>;
}

function bad(file: string, key: string, message: string, hint?: string): LmfError {
  return new LmfError('bad_model_config', message, { file, key, hint });
}

export function parseModelConfig(raw: unknown, file: string): ModelConfig {
  const parsed = rawConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw bad(file, issue.path.join('.'), issue.message);
  }
  const c = parsed.data;
  if (!(supportedModelTypes as readonly string[]).includes(c.model_type)) {
    throw bad(
      file,
      'model_type',
      `model_type "${c.model_type}" is not supported`,
      `supported: ${supportedModelTypes.join(', ')} (LLaMA, Mistral, Qwen2/Qwen2.5 and models built on them such as SmolLM)`,
    );
  }
  const modelType = c.model_type as ModelConfig['modelType'];
  const numKvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % numKvHeads !== 0) {
    throw bad(
      file,
      'num_key_value_heads',
      `num_attention_heads ${c.num_attention_heads} is not a multiple of num_key_value_heads ${numKvHeads}`,
    );
  }
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw bad(file, 'head_dim', `head_dim ${headDim} must be an even integer`);
  }
  if ((c.hidden_act ?? 'silu') !== 'silu')
    throw bad(file, 'hidden_act', `hidden_act "${c.hidden_act}" is not supported (silu only)`);
  if ((c.pretraining_tp ?? 1) !== 1) throw bad(file, 'pretraining_tp', 'pretraining_tp > 1 is not supported');
  const scaling = c.rope_scaling ?? null;
  const kind = scaling ? (scaling.rope_type ?? scaling.type ?? 'default') : 'default';
  if (!['default', 'linear', 'llama3'].includes(kind)) {
    throw bad(file, 'rope_scaling', `rope_scaling type "${kind}" is not supported`, 'supported: linear, llama3');
  }
  const eos = c.eos_token_id;
  const useWindow = modelType === 'mistral' || (modelType === 'qwen2' && c.use_sliding_window === true);
  return {
    modelType,
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads,
    headDim,
    rmsNormEps: c.rms_norm_eps ?? 1e-6,
    ropeTheta: c.rope_theta ?? 10000,
    ropeScaling: scaling,
    tieWordEmbeddings: c.tie_word_embeddings ?? false,
    qkvBias: modelType === 'qwen2' ? true : (c.attention_bias ?? false),
    oBias: modelType === 'qwen2' ? false : (c.attention_bias ?? false),
    mlpBias: c.mlp_bias ?? false,
    padTokenId: c.pad_token_id ?? null,
    eosTokenIds: eos === undefined || eos === null ? [] : Array.isArray(eos) ? eos : [eos],
    bosTokenId: typeof c.bos_token_id === 'number' ? c.bos_token_id : null,
    maxPositions: c.max_position_embeddings ?? 2048,
    slidingWindow: useWindow ? (c.sliding_window ?? null) : null,
    raw: raw as Record<string, unknown>,
  };
}

export function readModelConfig(dir: string): ModelConfig {
  const file = path.join(dir, 'config.json');
  requireModelFolder(dir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new LmfError('model_missing', 'config.json not found: this is not a Hugging Face model folder', {
      file,
      hint: 'model_name_or_path must name a folder with config.json and *.safetensors',
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new LmfError('bad_model_config', `config.json is not valid JSON (${(err as Error).message})`, { file });
  }
  return parseModelConfig(raw, file);
}

/** Rotary inverse frequencies [headDim/2] in f32 arithmetic, as Hugging Face's rope init functions. */
export function ropeInvFreq(c: ModelConfig): Float32Array {
  const half = c.headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    inv[i] = Math.fround(1 / Math.fround(c.ropeTheta ** Math.fround((2 * i) / c.headDim)));
  }
  const s = c.ropeScaling;
  const kind = s ? (s.rope_type ?? s.type ?? 'default') : 'default';
  if (!s || kind === 'default') return inv;
  const factor = s.factor ?? 1;
  if (kind === 'linear') return inv.map((f) => Math.fround(f / factor));
  // llama3: long wavelengths divided by factor, short ones kept, a smooth blend between
  const lo = s.low_freq_factor ?? 1,
    hi = s.high_freq_factor ?? 4;
  const old = s.original_max_position_embeddings ?? 8192;
  const loWl = old / lo,
    hiWl = old / hi;
  return inv.map((f) => {
    const wl = (2 * Math.PI) / f;
    if (wl < hiWl) return f;
    if (wl > loWl) return Math.fround(f / factor);
    const smooth = (old / wl - lo) / (hi - lo);
    return Math.fround((1 - smooth) * (f / factor) + smooth * f);
  });
}
