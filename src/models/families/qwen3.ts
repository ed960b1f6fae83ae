/**
 * Qwen3 (Qwen3ForCausalLM): LLaMA with RMSNorm over head_dim on q and k before the rotation (q_norm, k_norm)
 * and a head_dim of its own (not hidden_size / heads). Qwen3-MoE and Qwen3-Next are other architectures.
 */
import { llamaArchitecture } from './llama.js';
import { qwenTemplate, qwenWindows } from './qwen2.js';
import { plainLayers, type Family } from '../family.js';

export const qwen3: Family = {
  id: 'qwen3',
  title: 'Qwen3',
  modelTypes: ['qwen3'],
  defaults: {
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: false,
    max_position_embeddings: 32768,
    head_dim: 128,
    attention_bias: false,
  },
  textConfig: (raw) => raw,
  architecture(c, base, file) {
    return qwenWindows(c, base, { ...llamaArchitecture(c, base, file), qkNorm: true });
  },
  gguf: { arch: 'qwen3', interleaveQK: false, normShift: 0, unsupported: plainLayers },
  template: (chat) => qwenTemplate(chat, true),
};
