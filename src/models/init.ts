/**
 * Fresh parameters for a model built from a config alone (pre-training from scratch, benchmarks, tests):
 * matrices ~ N(0, initializer_range), norm weights 1, biases 0, as Hugging Face's _init_weights.
 */
import { parseModelConfig, type ModelConfig } from './config.js';
import { buildLlama, type LlamaModel, type WeightDType } from './llama.js';
import { Rng } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';

export function initLlama(config: ModelConfig, dtype: WeightDType, seed: number, std = 0.02): LlamaModel {
  const rng = new Rng(seed);
  return buildLlama(config, (name, shape, dt) => {
    // values go straight into native memory: a JavaScript copy of every weight would double the peak
    const t = Tensor.empty(shape, 'f32');
    const values = t.data;
    if (name.endsWith('norm.weight')) values.fill(1);
    else if (name.endsWith('.bias')) values.fill(0);
    else for (let i = 0; i < values.length; i++) values[i] = rng.normal() * std;
    if (dt === 'f32') return t;
    const low = t.toBf16();
    t.dispose();
    return low;
  }, { dtype });
}

/** Shapes of well-known checkpoints, for `lmf bench` without downloading them. */
export const presets: Record<string, Record<string, unknown>> = {
  'smollm2-135m': {
    model_type: 'llama', vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30,
    num_attention_heads: 9, num_key_value_heads: 3, tie_word_embeddings: true, rms_norm_eps: 1e-5, rope_theta: 100000,
    max_position_embeddings: 8192, bos_token_id: 0, eos_token_id: 0,
  },
  'qwen2.5-0.5b': {
    model_type: 'qwen2', vocab_size: 151936, hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24,
    num_attention_heads: 14, num_key_value_heads: 2, tie_word_embeddings: true, rms_norm_eps: 1e-6, rope_theta: 1000000,
    max_position_embeddings: 32768, bos_token_id: 151643, eos_token_id: 151643,
  },
};

export function presetConfig(name: string): ModelConfig {
  const raw = presets[name];
  if (!raw) throw new Error(`unknown preset ${name}`);
  return parseModelConfig(raw, `preset:${name}`);
}
