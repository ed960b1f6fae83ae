/**
 * SmolLM3 (SmolLM3ForCausalLM): LLaMA in which every no_rope_layer_interval-th layer (no_rope_layers[i] = 0)
 * attends without rotary positions.
 */
import { configError } from '../config.js';
import { llamaArchitecture } from './llama.js';
import type { Family } from '../family.js';

export const smollm3: Family = {
  id: 'smollm3',
  title: 'SmolLM3',
  modelTypes: ['smollm3'],
  defaults: {
    rms_norm_eps: 1e-6,
    rope_theta: 2000000,
    tie_word_embeddings: true,
    max_position_embeddings: 32768,
    no_rope_layer_interval: 4,
  },
  textConfig: (raw) => raw,
  architecture(c, base, file) {
    const options = llamaArchitecture(c, base, file);
    const interval = Number(c.no_rope_layer_interval);
    const useRope = Array.isArray(c.no_rope_layers)
      ? (c.no_rope_layers as unknown[]).map((v) => v !== 0)
      : Array.from({ length: base.numLayers }, (_, i) => (i + 1) % interval !== 0);
    if (useRope.length !== base.numLayers)
      throw configError(
        file,
        'no_rope_layers',
        `no_rope_layers has ${useRope.length} entries for ${base.numLayers} layers`,
      );
    if (c.use_sliding_window === true)
      throw configError(file, 'use_sliding_window', 'SmolLM3 with use_sliding_window is not supported');
    return { ...options, layerSpecs: options.layerSpecs.map((l, i) => ({ ...l, rope: useRope[i] ? l.rope : null })) };
  },
  gguf: {
    arch: 'smollm3',
    // llama.cpp converts SmolLM3 as LLaMA (q and k permuted) and skips the rotation on every fourth layer
    interleaveQK: true,
    normShift: 0,
    unsupported(c) {
      const every4th = c.layerSpecs.every((l, i) => (l.rope === null) === ((i + 1) % 4 === 0));
      if (!every4th) return 'with no-rope layers other than every fourth (llama.cpp fixes that step)';
      if (c.layerSpecs.some((l) => l.window !== null || (l.rope && l.rope.scaling)))
        return 'with windows or rope scaling';
      return null;
    },
  },
  template: (chat) => (chat.includes('<|im_start|>') ? 'smollm3' : null),
};
