/**
 * LLaMA (LlamaForCausalLM) and the models built on it (SmolLM2, TinyLlama, DeepSeek-R1-Distill-Llama):
 * RMSNorm, rotate-half RoPE with default, linear, dynamic NTK, YaRN or llama3 scaling, grouped-query attention, SwiGLU.
 */
import { configError, type ArchitectureOptions, type BaseConfig, type RawModelConfig } from '../config.js';
import { checkRopeType } from '../rope.js';
import { plainLayers, uniformLayers, type Family } from '../family.js';

/** The options of a plain LLaMA-style decoder; the families derived from it change what differs. */
export function llamaArchitecture(c: RawModelConfig, base: BaseConfig, file: string): ArchitectureOptions {
  if ((c.hidden_act ?? 'silu') !== 'silu')
    throw configError(file, 'hidden_act', `hidden_act "${c.hidden_act}" is not supported (silu only)`);
  const scaling = c.rope_scaling ?? null;
  checkRopeType(scaling, ['linear', 'dynamic', 'yarn', 'llama3'], file);
  return {
    qkvBias: c.attention_bias ?? false,
    oBias: c.attention_bias ?? false,
    mlpBias: c.mlp_bias ?? false,
    fusedProjections: false,
    normOffset: 0,
    qkNorm: false,
    sandwichNorms: false,
    activation: 'silu',
    embedScale: 1,
    attentionScale: 1 / Math.sqrt(base.headDim),
    attentionSoftcap: null,
    finalSoftcap: null,
    attentionOutputGate: false,
    linearAttention: null,
    layerSpecs: uniformLayers(base, {
      window: null,
      rope: { theta: c.rope_theta ?? 10000, scaling, rotaryDim: base.headDim },
    }),
  };
}

/** Templates that Llama-style chat_templates imply. */
export function llamaTemplate(chat: string): string | null {
  if (chat.includes('<|start_header_id|>')) return 'llama3';
  if (chat.includes('[INST]')) return 'llama2';
  if (chat.includes('<|im_start|>')) return 'chatml';
  return null;
}

export const llama: Family = {
  id: 'llama',
  title: 'LLaMA',
  modelTypes: ['llama'],
  defaults: { rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, max_position_embeddings: 2048 },
  textConfig: (raw) => raw,
  architecture: llamaArchitecture,
  gguf: { arch: 'llama', interleaveQK: true, normShift: 0, unsupported: plainLayers },
  template: llamaTemplate,
};
