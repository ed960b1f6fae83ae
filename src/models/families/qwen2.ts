/**
 * Qwen2 and Qwen2.5 (Qwen2ForCausalLM): LLaMA with biases on q, k and v (never on o_proj), and a sliding
 * window on the layers from max_window_layers up when use_sliding_window is set.
 */
import { llamaArchitecture } from './llama.js';
import { plainLayers, type Family } from '../family.js';
import type { ArchitectureOptions, BaseConfig, RawModelConfig } from '../config.js';

/** Qwen's sliding window: layers at or above max_window_layers use it when use_sliding_window is true. */
export function qwenWindows(c: RawModelConfig, base: BaseConfig, options: ArchitectureOptions): ArchitectureOptions {
  if (c.use_sliding_window !== true || !c.sliding_window) return options;
  const from = typeof c.max_window_layers === 'number' ? c.max_window_layers : base.numLayers;
  return {
    ...options,
    layerSpecs: options.layerSpecs.map((l, i) => ({ ...l, window: i >= from ? (c.sliding_window ?? null) : null })),
  };
}

/** Qwen templates: chatml markers; Qwen3's thinking markers pick the reasoning template. */
export function qwenTemplate(chat: string, thinking: boolean): string | null {
  if (!chat.includes('<|im_start|>')) return null;
  if (thinking) return chat.includes('<think>') ? 'qwen3' : 'qwen3_nothink';
  return 'qwen';
}

export const qwen2: Family = {
  id: 'qwen2',
  title: 'Qwen2 / Qwen2.5',
  modelTypes: ['qwen2'],
  defaults: { rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, max_position_embeddings: 32768 },
  textConfig: (raw) => raw,
  architecture(c, base, file) {
    const options = llamaArchitecture({ ...c, attention_bias: false }, base, file);
    return qwenWindows(c, base, { ...options, qkvBias: true, oBias: false });
  },
  gguf: { arch: 'qwen2', interleaveQK: false, normShift: 0, unsupported: plainLayers },
  template: (chat) => qwenTemplate(chat, false),
};
