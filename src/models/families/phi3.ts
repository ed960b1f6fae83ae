/**
 * Phi-3, Phi-3.5-mini and Phi-4-mini (Phi3ForCausalLM): q, k and v in one qkv_proj and gate and up in one
 * gate_up_proj (PEFT names LoRA targets by these), partial rotary (partial_rotary_factor: the first part of
 * each head turns), rope_scaling longrope (short or long factors by sequence length, cos and sin times the
 * attention factor), and a sliding window when sliding_window is set.
 */
import { configError } from '../config.js';
import { checkRopeType, ropeInvFreq, type RopeScaling } from '../rope.js';
import { llamaArchitecture } from './llama.js';
import type { Family } from '../family.js';

export const phi3: Family = {
  id: 'phi3',
  title: 'Phi-3 / Phi-4-mini',
  modelTypes: ['phi3'],
  defaults: {
    vocab_size: 32064,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    max_position_embeddings: 4096,
    original_max_position_embeddings: 4096,
    partial_rotary_factor: 1,
    bos_token_id: 1,
    eos_token_id: 32000,
    pad_token_id: 32000,
  },
  textConfig: (raw) => raw,
  architecture(c, base, file) {
    const scaling = c.rope_scaling ?? null;
    checkRopeType(scaling, ['longrope'], file);
    const options = llamaArchitecture({ ...c, rope_scaling: null, attention_bias: false, mlp_bias: false }, base, file);
    const factor = Number(c.partial_rotary_factor);
    const rotaryDim = Math.floor(base.headDim * factor);
    if (!(rotaryDim > 0 && rotaryDim % 2 === 0 && rotaryDim <= base.headDim))
      throw configError(
        file,
        'partial_rotary_factor',
        `partial_rotary_factor ${factor} gives ${rotaryDim} rotary dims`,
      );
    let longrope: RopeScaling | null = null;
    if (scaling) {
      for (const key of ['short_factor', 'long_factor'] as const) {
        if (scaling[key]?.length !== rotaryDim / 2)
          throw configError(file, `rope_scaling.${key}`, `needs ${rotaryDim / 2} factors, one per rotary frequency`);
      }
      // Phi-3 keeps its pretrained length at the top level; the extension factor is the ratio to it
      const original = c.original_max_position_embeddings;
      longrope = {
        ...scaling,
        ...(typeof original === 'number' ? { original_max_position_embeddings: original } : {}),
      };
    }
    const rope = { theta: c.rope_theta ?? 10000, scaling: longrope, rotaryDim };
    const window = c.sliding_window ?? null;
    return { ...options, fusedProjections: true, layerSpecs: options.layerSpecs.map(() => ({ window, rope })) };
  },
  gguf: {
    arch: 'phi3',
    interleaveQK: false,
    normShift: 0,
    unsupported: () => null,
    keys(c) {
      const rope = c.layerSpecs[0].rope!;
      const window = c.layerSpecs[0].window;
      const s = rope.scaling;
      return {
        'rope.dimension_count': { u32: rope.rotaryDim },
        ...(window ? { 'attention.sliding_window': { u32: window } } : {}),
        ...(s
          ? {
              'rope.scaling.attn_factor': { f32: ropeInvFreq(rope, c).attentionFactor },
              'rope.scaling.original_context_length': { u32: s.original_max_position_embeddings ?? c.maxPositions },
            }
          : {}),
      };
    },
    tensors(c) {
      const s = c.layerSpecs[0].rope!.scaling;
      if (!s) return [];
      return [
        { name: 'rope_factors_long.weight', values: Float32Array.from(s.long_factor!) },
        { name: 'rope_factors_short.weight', values: Float32Array.from(s.short_factor!) },
      ];
    },
  },
  template: (chat) =>
    chat.includes('<|im_sep|>')
      ? 'phi4'
      : chat.includes('<|assistant|>')
        ? chat.includes('<|system|>')
          ? 'phi4_mini'
          : 'phi'
        : null,
};
