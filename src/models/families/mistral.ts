/** Mistral (MistralForCausalLM): LLaMA with a sliding attention window on every layer. */
import { llamaArchitecture } from './llama.js';
import { plainLayers, type Family } from '../family.js';

export const mistral: Family = {
  id: 'mistral',
  title: 'Mistral',
  modelTypes: ['mistral'],
  defaults: { rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, max_position_embeddings: 32768 },
  textConfig: (raw) => raw,
  architecture(c, base, file) {
    const options = llamaArchitecture(c, base, file);
    const window = c.sliding_window ?? null;
    return { ...options, layerSpecs: options.layerSpecs.map((l) => ({ ...l, window })) };
  },
  gguf: { arch: 'llama', interleaveQK: true, normShift: 0, unsupported: plainLayers },
  template: (chat) => (chat.includes('[INST]') ? 'mistral' : chat.includes('<|im_start|>') ? 'chatml' : null),
};
