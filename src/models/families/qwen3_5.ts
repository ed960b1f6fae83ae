/**
 * Qwen3.5 dense models (Qwen3_5ForConditionalGeneration's language model; Qwen3_5ForCausalLM): a hybrid of Gated
 * DeltaNet linear-attention layers (three of every four: layer_types, else full_attention_interval) and gated
 * full-attention layers — q_proj gives each head a query and a sigmoid output gate, q_norm/k_norm over head_dim,
 * partial rotary (rope_parameters.partial_rotary_factor; text positions make its multimodal rope one-dimensional),
 * GQA — with the SwiGLU MLP and norms that scale by (1 + weight). Released checkpoints nest the text model's keys
 * under text_config and its weights under model.language_model.*; the vision tower and the multi-token-prediction
 * (mtp.*) weights are left out (the loader names them).
 */
import { z } from 'zod';
import { configError, type ArchitectureOptions, type BaseConfig, type RawModelConfig } from '../config.js';
import { nestedTextWeights, type Family } from '../family.js';

const keys = z
  .object({
    hidden_act: z.string().nullish(),
    layer_types: z.array(z.string()).nullish(),
    full_attention_interval: z.number().int().positive().nullish(),
    linear_conv_kernel_dim: z.number().int().positive(),
    linear_key_head_dim: z.number().int().positive(),
    linear_value_head_dim: z.number().int().positive(),
    linear_num_key_heads: z.number().int().positive(),
    linear_num_value_heads: z.number().int().positive(),
    rope_parameters: z
      .object({
        rope_type: z.string().nullish(),
        rope_theta: z.number().positive().nullish(),
        partial_rotary_factor: z.number().positive().max(1).nullish(),
      })
      .loose()
      .nullish(),
    partial_rotary_factor: z.number().positive().max(1).nullish(),
  })
  .loose();

function architecture(c: RawModelConfig, base: BaseConfig, file: string): ArchitectureOptions {
  const parsed = keys.safeParse(c);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw configError(file, issue.path.join('.'), issue.message);
  }
  const q = parsed.data;
  if ((q.hidden_act ?? 'silu') !== 'silu')
    throw configError(file, 'hidden_act', `hidden_act "${q.hidden_act}" is not supported (silu only)`);
  if (c.rope_scaling)
    throw configError(
      file,
      'rope_scaling',
      'rope scaling is not supported for Qwen3.5 (its context is 262,144 already)',
    );
  const ropeType = q.rope_parameters?.rope_type ?? 'default';
  if (ropeType !== 'default')
    throw configError(
      file,
      'rope_parameters.rope_type',
      `rope_type "${ropeType}" is not supported for Qwen3.5 (default)`,
    );
  if (q.linear_num_value_heads % q.linear_num_key_heads !== 0)
    throw configError(
      file,
      'linear_num_value_heads',
      `linear_num_value_heads ${q.linear_num_value_heads} is not a multiple of linear_num_key_heads ${q.linear_num_key_heads}`,
    );
  const interval = q.full_attention_interval ?? 4;
  const types =
    q.layer_types ??
    Array.from({ length: base.numLayers }, (_, i) =>
      (i + 1) % interval === 0 ? 'full_attention' : 'linear_attention',
    );
  if (types.length !== base.numLayers)
    throw configError(file, 'layer_types', `layer_types has ${types.length} entries for ${base.numLayers} layers`);
  const unknown = types.find((t) => t !== 'full_attention' && t !== 'linear_attention');
  if (unknown) throw configError(file, 'layer_types', `layer type "${unknown}" is not supported`);
  const factor = q.rope_parameters?.partial_rotary_factor ?? q.partial_rotary_factor ?? 0.25;
  const rotaryDim = Math.floor(base.headDim * factor);
  if (rotaryDim % 2 !== 0 || rotaryDim === 0)
    throw configError(file, 'partial_rotary_factor', `head_dim × partial_rotary_factor = ${rotaryDim} must be even`);
  const rope = { theta: q.rope_parameters?.rope_theta ?? c.rope_theta ?? 10000, scaling: null, rotaryDim };
  return {
    qkvBias: c.attention_bias ?? false,
    oBias: c.attention_bias ?? false,
    mlpBias: false,
    fusedProjections: false,
    normOffset: 1,
    qkNorm: true,
    sandwichNorms: false,
    activation: 'silu',
    embedScale: 1,
    attentionScale: 1 / Math.sqrt(base.headDim),
    attentionSoftcap: null,
    finalSoftcap: null,
    attentionOutputGate: true,
    linearAttention: {
      keyHeads: q.linear_num_key_heads,
      valueHeads: q.linear_num_value_heads,
      keyDim: q.linear_key_head_dim,
      valueDim: q.linear_value_head_dim,
      convKernel: q.linear_conv_kernel_dim,
    },
    layerSpecs: types.map((t) =>
      t === 'linear_attention' ? { window: null, rope: null, linearAttention: true } : { window: null, rope },
    ),
  };
}

export const qwen3_5: Family = {
  id: 'qwen3_5',
  title: 'Qwen3.5',
  modelTypes: ['qwen3_5_text', 'qwen3_5'],
  // Qwen3_5TextConfig's defaults for the keys a config.json may leave out
  defaults: {
    vocab_size: 248320,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
    max_position_embeddings: 32768,
    head_dim: 256,
    attention_bias: false,
    linear_conv_kernel_dim: 4,
    linear_key_head_dim: 128,
    linear_value_head_dim: 128,
    linear_num_key_heads: 16,
    linear_num_value_heads: 32,
  },
  textConfig(raw, file) {
    if (raw.model_type !== 'qwen3_5') return raw;
    // Qwen3_5ForConditionalGeneration: the language model's keys sit under text_config
    const text = raw.text_config;
    if (!text || typeof text !== 'object') throw configError(file, 'text_config', 'a qwen3_5 config needs text_config');
    const t = text as Record<string, unknown>;
    return {
      ...t,
      model_type: 'qwen3_5_text',
      architectures: ['Qwen3_5ForCausalLM'],
      tie_word_embeddings: t.tie_word_embeddings ?? raw.tie_word_embeddings ?? false,
    };
  },
  architecture,
  checkpointName: nestedTextWeights([{ model: 'model.language_model.', head: 'lm_head.weight' }]),
  gguf: null,
  template: (chat) =>
    chat.includes('<|im_start|>') ? (chat.includes('<think>') ? 'qwen3_5' : 'qwen3_5_nothink') : null,
};
