/**
 * Gemma 3 (Gemma3ForCausalLM: gemma-3-270m, gemma-3-1b; and the text tower of Gemma3ForConditionalGeneration)
 * and Gemma 2 (Gemma2ForCausalLM). Both: embeddings times sqrt(hidden_size), RMSNorm scaling by (1 + weight),
 * four norms per layer (input, post-attention, pre- and post-feed-forward), scores scaled by
 * query_pre_attn_scalar^-0.5, GeGLU with tanh-approximate GELU, and local (sliding-window) layers between
 * global ones. Gemma 3 adds q_norm/k_norm and a rotary base of its own on local layers (rope_local_base_freq);
 * Gemma 2 soft-caps attention scores and the final logits.
 */
import { z } from 'zod';
import {
  configError,
  familyKeys,
  type ModelConfig,
  type ArchitectureOptions,
  type BaseConfig,
  type RawModelConfig,
} from '../config.js';
import { checkRopeType, ropeType as ropeTypeOf, type RopeSpec } from '../rope.js';
import { nestedTextConfig, nestedTextWeights, type Family } from '../family.js';

const gemmaKeys = z
  .object({
    hidden_activation: z.string().nullish(),
    hidden_act: z.string().nullish(),
    query_pre_attn_scalar: z.number().positive(),
    layer_types: z.array(z.enum(['sliding_attention', 'full_attention'])).nullish(),
    sliding_window_pattern: z.number().int().positive().nullish(),
    rope_local_base_freq: z.number().positive().nullish(),
    attn_logit_softcapping: z.number().positive().nullish(),
    final_logit_softcapping: z.number().positive().nullish(),
  })
  .loose();

/** The options both generations share; `pattern` says which layers are local when layer_types is absent. */
function gemmaArchitecture(c: RawModelConfig, base: BaseConfig, file: string, generation: 2 | 3): ArchitectureOptions {
  const g = familyKeys(gemmaKeys, c, file);
  const act = g.hidden_activation ?? g.hidden_act ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh' && act !== 'gelu_tanh')
    throw configError(file, 'hidden_activation', `hidden_activation "${act}" is not supported (gelu_pytorch_tanh)`);
  const scaling = c.rope_scaling ?? null;
  checkRopeType(scaling, ['linear', 'dynamic', 'yarn'], file);
  // Gemma 2: every other layer local; Gemma 3: five local, then one global
  const pattern = generation === 2 ? 2 : (g.sliding_window_pattern ?? 6);
  const types =
    g.layer_types ??
    Array.from({ length: base.numLayers }, (_, i) =>
      (i + 1) % pattern !== 0 ? 'sliding_attention' : 'full_attention',
    );
  if (types.length !== base.numLayers)
    throw configError(file, 'layer_types', `layer_types has ${types.length} entries for ${base.numLayers} layers`);
  const global: RopeSpec = { theta: c.rope_theta ?? 10000, scaling, rotaryDim: base.headDim };
  const local: RopeSpec =
    generation === 3 ? { theta: g.rope_local_base_freq ?? 10000, scaling: null, rotaryDim: base.headDim } : global;
  const window = c.sliding_window ?? null;
  return {
    qkvBias: c.attention_bias ?? false,
    oBias: c.attention_bias ?? false,
    mlpBias: false,
    fusedProjections: false,
    normOffset: 1,
    qkNorm: generation === 3,
    sandwichNorms: true,
    activation: 'gelu_tanh',
    // Hugging Face casts sqrt(hidden_size) to the activations' dtype: f32 here
    embedScale: Math.fround(Math.sqrt(base.hiddenSize)),
    attentionScale: g.query_pre_attn_scalar ** -0.5,
    attentionSoftcap: g.attn_logit_softcapping ?? null,
    finalSoftcap: g.final_logit_softcapping ?? null,
    attentionOutputGate: false,
    linearAttention: null,
    layerSpecs: types.map((t) =>
      t === 'sliding_attention' ? { window, rope: local } : { window: null, rope: global },
    ),
  };
}

/** The rotary setting of the global layers (every layer's when none is global). */
function globalRope(c: ModelConfig): RopeSpec {
  return c.layerSpecs.find((l) => l.window === null)?.rope ?? c.layerSpecs[0].rope!;
}

/** llama.cpp scales Gemma's scores by head_dim^-0.5: query_pre_attn_scalar must be head_dim. */
function headDimScale(c: ModelConfig): string | null {
  return Math.abs(c.attentionScale - c.headDim ** -0.5) > 1e-9
    ? 'with query_pre_attn_scalar other than head_dim'
    : null;
}

const gemmaTemplate = (generation: 2 | 3) => (chat: string) =>
  chat.includes('<start_of_turn>') ? (generation === 3 ? 'gemma3' : 'gemma') : null;

const textPrefixes = [
  // transformers >= 4.52 save format, then the format the Hub's gemma-3 checkpoints were published in
  { model: 'model.language_model.', head: 'lm_head.weight' },
  { model: 'language_model.model.', head: 'language_model.lm_head.weight' },
];

export const gemma3: Family = {
  id: 'gemma3',
  title: 'Gemma 3',
  modelTypes: ['gemma3_text', 'gemma3'],
  defaults: {
    vocab_size: 262208,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    rope_local_base_freq: 10000,
    tie_word_embeddings: true,
    max_position_embeddings: 131072,
    head_dim: 256,
    query_pre_attn_scalar: 256,
    sliding_window: 4096,
    pad_token_id: 0,
    bos_token_id: 2,
    eos_token_id: 1,
  },
  // Gemma3ForConditionalGeneration: the text tower's keys sit under text_config
  textConfig: nestedTextConfig('gemma3', { modelType: 'gemma3_text', architecture: 'Gemma3ForCausalLM', tied: true }),
  architecture: (c, base, file) => gemmaArchitecture(c, base, file, 3),
  checkpointName: nestedTextWeights(textPrefixes),
  gguf: {
    arch: 'gemma3',
    interleaveQK: false,
    normShift: 1,
    unsupported(c) {
      // llama.cpp's gemma3: five local layers then a global one, local rope base 10000, scores by head_dim
      const global = globalRope(c);
      const pattern = c.layerSpecs.every((l, i) => (l.window === null) === ((i + 1) % 6 === 0));
      if (!pattern) return 'with a local/global pattern other than every sixth layer global';
      if (c.layerSpecs.some((l) => l.window !== null && (l.rope!.theta !== 10000 || l.rope!.scaling)))
        return 'with a local rope base other than 10000';
      if (global.scaling && ropeTypeOf(global.scaling) !== 'linear') return 'with this rope scaling';
      return headDimScale(c);
    },
    keys(c) {
      const global = globalRope(c);
      const window = c.layerSpecs.find((l) => l.window !== null)?.window;
      return {
        'rope.freq_base': { f32: global.theta },
        ...(window ? { 'attention.sliding_window': { u32: window } } : {}),
        ...(global.scaling
          ? { 'rope.scaling.type': { str: 'linear' }, 'rope.scaling.factor': { f32: global.scaling.factor ?? 1 } }
          : {}),
      };
    },
  },
  template: gemmaTemplate(3),
};

export const gemma2: Family = {
  id: 'gemma2',
  title: 'Gemma 2',
  modelTypes: ['gemma2'],
  defaults: {
    vocab_size: 256000,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: true,
    max_position_embeddings: 8192,
    head_dim: 256,
    query_pre_attn_scalar: 256,
    sliding_window: 4096,
    attn_logit_softcapping: 50,
    final_logit_softcapping: 30,
    pad_token_id: 0,
    bos_token_id: 2,
    eos_token_id: 1,
  },
  textConfig: (raw) => raw,
  architecture: (c, base, file) => gemmaArchitecture(c, base, file, 2),
  gguf: {
    arch: 'gemma2',
    interleaveQK: false,
    normShift: 1,
    unsupported(c) {
      const alternate = c.layerSpecs.every((l, i) => (l.window === null) === (i % 2 === 1));
      if (!alternate) return 'with a local/global pattern other than alternating';
      return headDimScale(c);
    },
    keys(c) {
      const window = c.layerSpecs.find((l) => l.window !== null)?.window;
      return {
        ...(window ? { 'attention.sliding_window': { u32: window } } : {}),
        ...(c.attentionSoftcap ? { attn_logit_softcapping: { f32: c.attentionSoftcap } } : {}),
        ...(c.finalSoftcap ? { final_logit_softcapping: { f32: c.finalSoftcap } } : {}),
      };
    },
  },
  template: gemmaTemplate(2),
};
