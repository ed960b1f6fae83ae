/**
 * A model's config.json, read the way its family's Hugging Face config class reads it: the keys every decoder
 * shares are parsed here, the family (src/models/families/) fills its defaults and sets the architecture
 * options the shared decoder block reads.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { LmfError } from '../errors.js';
import { requireModelFolder } from '../io/dirs.js';
import type { Family } from './family.js';
import { ropeScalingSchema, type RopeSpec } from './rope.js';
import { families, refusedModelTypes } from './families/index.js';

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

/**
 * What one layer does differently: its attention window and its rotary setting (null: no rotation), and for
 * hybrid models (Qwen3.5) whether its token mixer is Gated DeltaNet linear attention instead of full attention.
 */
export interface LayerSpec {
  window: number | null;
  rope: RopeSpec | null;
  linearAttention?: boolean;
}

/** Gated DeltaNet's sizes (Qwen3.5's linear_* keys): key and value heads and their widths, the conv kernel. */
export interface LinearAttentionSizes {
  keyHeads: number;
  valueHeads: number;
  keyDim: number;
  valueDim: number;
  convKernel: number;
}

/** The keys every decoder family shares. */
export interface BaseConfig {
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  padTokenId: number | null;
  eosTokenIds: number[];
  bosTokenId: number | null;
  maxPositions: number;
  /**
   * the file as read, written back unchanged but for edits; a multimodal checkpoint's text model keys (its
   * text_config), since what is saved is the text model
   */
  raw: Record<string, unknown>;
}

/** The architecture options a family sets; the shared block (decoder.ts) reads nothing else. */
export interface ArchitectureOptions {
  /** q, k, v biases; o_proj bias; MLP biases */
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  /** q and k packed in one qkv_proj, gate and up in one gate_up_proj (Phi-3) */
  fusedProjections: boolean;
  /** norms scale by (1 + weight) (Gemma) rather than by weight */
  normOffset: 0 | 1;
  /** RMSNorm over head_dim on q and k before the rotation (Qwen3, Gemma 3) */
  qkNorm: boolean;
  /** norms after attention and around the MLP too (Gemma: four norms per layer) */
  sandwichNorms: boolean;
  activation: 'silu' | 'gelu_tanh';
  /** embeddings are multiplied by this (Gemma: sqrt(hidden_size) in the weights' precision) */
  embedScale: number;
  /** attention scores are q·k times this */
  attentionScale: number;
  /** Gemma 2's soft-capping of attention scores and of the final logits; null = none */
  attentionSoftcap: number | null;
  finalSoftcap: number | null;
  /** q_proj yields a query and a sigmoid output gate per head (Qwen3.5's gated attention) */
  attentionOutputGate: boolean;
  /** the linear-attention layers' sizes when some layerSpecs are linear, else null */
  linearAttention: LinearAttentionSizes | null;
  layerSpecs: LayerSpec[];
}

export interface ModelConfig extends BaseConfig, ArchitectureOptions {
  /** the family's id in the registry (families/index.ts) */
  family: string;
}

function bad(file: string, key: string, message: string, hint?: string): LmfError {
  return new LmfError('bad_model_config', message, { file, key, hint });
}

/** An LmfError about one key of config.json (families use it for their refusals). */
export const configError = bad;

/** A family's own keys of config.json read through its schema; the first problem is named by its key. */
export function familyKeys<T>(schema: z.ZodType<T>, c: RawModelConfig, file: string): T {
  const parsed = schema.safeParse(c);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw bad(file, issue.path.join('.'), issue.message);
}

export function familyOf(modelType: string, file: string): Family {
  const family = families.find((f) => f.modelTypes.includes(modelType));
  if (family) return family;
  const refused = refusedModelTypes[modelType];
  const supported = families.flatMap((f) => f.modelTypes).join(', ');
  if (refused) throw bad(file, 'model_type', `model_type "${modelType}" is not supported: ${refused}`);
  throw bad(file, 'model_type', `model_type "${modelType}" is not supported`, `supported: ${supported}`);
}

export function parseModelConfig(raw: unknown, file: string): ModelConfig {
  const typed = z.object({ model_type: z.string() }).loose().safeParse(raw);
  if (!typed.success) throw bad(file, 'model_type', 'config.json has no model_type');
  const family = familyOf(typed.data.model_type, file);
  // a key the file sets to null keeps null (Python's None): Hugging Face's classes read it as unset, not as default
  const text = family.textConfig(typed.data, file);
  const withDefaults = { ...family.defaults, ...text };
  const parsed = rawConfigSchema.safeParse(withDefaults);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw bad(file, issue.path.join('.'), issue.message);
  }
  const c = parsed.data;
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
  if ((c.pretraining_tp ?? 1) !== 1) throw bad(file, 'pretraining_tp', 'pretraining_tp > 1 is not supported');
  const eos = c.eos_token_id;
  const base: BaseConfig = {
    modelType: c.model_type,
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads,
    headDim,
    rmsNormEps: c.rms_norm_eps ?? 1e-6,
    tieWordEmbeddings: c.tie_word_embeddings ?? false,
    padTokenId: c.pad_token_id ?? null,
    eosTokenIds: eos === undefined || eos === null ? [] : Array.isArray(eos) ? eos : [eos],
    bosTokenId: typeof c.bos_token_id === 'number' ? c.bos_token_id : null,
    maxPositions: c.max_position_embeddings ?? 2048,
    raw: text === typed.data ? (raw as Record<string, unknown>) : textModelConfig(typed.data, text),
  };
  return { ...base, ...family.architecture(c, base, file), family: family.id };
}

/**
 * The config a multimodal checkpoint's text model is written back with (Gemma3ForCausalLM, Qwen3_5ForCausalLM:
 * the weights LMFactory saves are the text model's): the text keys, with the file-level quantization and dtype.
 */
function textModelConfig(file: Record<string, unknown>, text: Record<string, unknown>): Record<string, unknown> {
  const kept = Object.fromEntries(
    ['quantization_config', 'torch_dtype'].filter((k) => k in file && !(k in text)).map((k) => [k, file[k]]),
  );
  return { ...kept, ...text };
}

/** A folder's config.json, parsed; `edit` may rewrite the file's keys first (LLaMA-Factory's rope_scaling key). */
export function readModelConfig(
  dir: string,
  edit: (raw: Record<string, unknown>) => Record<string, unknown> = (raw) => raw,
): ModelConfig {
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
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new LmfError('bad_model_config', 'config.json must hold a JSON object', { file });
  return parseModelConfig(edit(raw as Record<string, unknown>), file);
}
