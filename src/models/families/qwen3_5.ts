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
import {
  configError,
  familyKeys,
  type ArchitectureOptions,
  type BaseConfig,
  type LinearAttentionSizes,
  type ModelConfig,
  type RawModelConfig,
} from '../config.js';
import { nestedTextConfig, nestedTextWeights, type Family, type GgufLayout } from '../family.js';
import { llamaArchitecture } from './llama.js';

const keys = z
  .object({
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
  const q = familyKeys(keys, c, file);
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
    // LLaMA's block (SiLU MLP, scores by head_dim^-0.5, attention_bias) with (1 + w) norms and q/k norms
    ...llamaArchitecture(c, base, file),
    mlpBias: false,
    normOffset: 1,
    qkNorm: true,
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

/** The full-attention interval the layers follow (every n-th layer attends), or null when they follow none. */
function attentionInterval(c: ModelConfig): number | null {
  const first = c.layerSpecs.findIndex((l) => !l.linearAttention);
  if (first < 0) return null;
  const n = first + 1;
  return c.layerSpecs.every((l, i) => !l.linearAttention === ((i + 1) % n === 0)) ? n : null;
}

/**
 * llama.cpp's value-head order: its graph repeats the key heads tiled (value head j·Hk + kh reads key head kh)
 * where Hugging Face groups them (value head kh·r + j reads key head kh), so its converter moves the value heads'
 * blocks — rows (axis 0) or columns (axis 1) of `block` values per head — from grouped to tiled order.
 */
function tiledValueHeads(
  data: Float32Array,
  shape: readonly number[],
  axis: 0 | 1,
  s: LinearAttentionSizes,
  block: number,
  from = 0,
): Float32Array {
  const r = s.valueHeads / s.keyHeads;
  if (r === 1) return data;
  const out = Float32Array.from(data);
  const cols = shape.slice(1).reduce((a, b) => a * b, 1);
  const rows = shape[0];
  for (let kh = 0; kh < s.keyHeads; kh++)
    for (let j = 0; j < r; j++) {
      const src = from + (kh * r + j) * block,
        dst = from + (j * s.keyHeads + kh) * block;
      if (axis === 0) out.set(data.subarray(src * cols, (src + block) * cols), dst * cols);
      else
        for (let row = 0; row < rows; row++)
          out.set(data.subarray(row * cols + src, row * cols + src + block), row * cols + dst);
    }
  return out;
}

/** Qwen3.5 in llama.cpp's qwen35 architecture, as its converter writes it. */
const gguf: GgufLayout = {
  arch: 'qwen35',
  interleaveQK: false,
  normShift: 1,
  unsupported(c) {
    const la = c.linearAttention!;
    if (la.keyDim !== la.valueDim) return 'with linear_key_head_dim different from linear_value_head_dim';
    if (!attentionInterval(c)) return 'with layer_types other than every n-th layer full attention';
    return null;
  },
  keys(c) {
    const la = c.linearAttention!;
    const rotary = c.layerSpecs.find((l) => l.rope)!.rope!.rotaryDim;
    // multimodal rope sections: text positions turn every section alike, so only their sum matters here
    const pairs = rotary / 2;
    const third = Math.ceil(pairs / 3);
    return {
      'rope.dimension_count': { u32: rotary },
      'rope.dimension_sections': { i32s: [third, third, pairs - 2 * third, 0] },
      'ssm.conv_kernel': { u32: la.convKernel },
      'ssm.state_size': { u32: la.keyDim },
      'ssm.group_count': { u32: la.keyHeads },
      'ssm.time_step_rank': { u32: la.valueHeads },
      'ssm.inner_size': { u32: la.valueDim * la.valueHeads },
      full_attention_interval: { u32: attentionInterval(c)! },
    };
  },
  layerTensorNames: {
    'post_attention_layernorm.weight': 'post_attention_norm.weight',
    'linear_attn.in_proj_qkv.weight': 'attn_qkv.weight',
    'linear_attn.in_proj_z.weight': 'attn_gate.weight',
    'linear_attn.in_proj_b.weight': 'ssm_beta.weight',
    'linear_attn.in_proj_a.weight': 'ssm_alpha.weight',
    'linear_attn.conv1d.weight': 'ssm_conv1d.weight',
    'linear_attn.dt_bias': 'ssm_dt.bias',
    'linear_attn.A_log': 'ssm_a',
    'linear_attn.norm.weight': 'ssm_norm.weight',
    'linear_attn.out_proj.weight': 'ssm_out.weight',
  },
  convert(name, data, shape, c) {
    const la = c.linearAttention!;
    const part = /\.linear_attn\.(.+)$/.exec(name)?.[1];
    const keyChannels = 2 * la.keyHeads * la.keyDim;
    switch (part) {
      case 'in_proj_qkv.weight':
      case 'conv1d.weight':
        return tiledValueHeads(data, shape, 0, la, la.valueDim, keyChannels);
      case 'in_proj_z.weight':
        return tiledValueHeads(data, shape, 0, la, la.valueDim);
      case 'in_proj_b.weight':
      case 'in_proj_a.weight':
      case 'dt_bias':
        return tiledValueHeads(data, shape, 0, la, 1);
      case 'A_log':
        return tiledValueHeads(
          data.map((v) => -Math.exp(v)),
          shape,
          0,
          la,
          1,
        );
      case 'out_proj.weight':
        return tiledValueHeads(data, shape, 1, la, la.valueDim);
      case 'norm.weight':
        return data; // the gated norm scales by its weight: not shifted like the (1 + weight) norms
      default:
        return null;
    }
  },
};

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
  // Qwen3_5ForConditionalGeneration: the language model's keys sit under text_config
  textConfig: nestedTextConfig('qwen3_5', {
    modelType: 'qwen3_5_text',
    architecture: 'Qwen3_5ForCausalLM',
    tied: false,
  }),
  architecture,
  checkpointName: nestedTextWeights([{ model: 'model.language_model.', head: 'lm_head.weight' }]),
  gguf,
  template: (chat) =>
    chat.includes('<|im_start|>') ? (chat.includes('<think>') ? 'qwen3_5' : 'qwen3_5_nothink') : null,
};
