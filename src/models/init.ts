/**
 * Fresh parameters for a model built from a config alone (pre-training from scratch, benchmarks, tests):
 * matrices ~ N(0, initializer_range), norm weights 1, biases 0, as Hugging Face's _init_weights (Qwen3.5's linear
 * attention: dt_bias 1, A_log the log of a uniform draw).
 */
import { presets } from './presets.js';
import { parseModelConfig, type ModelConfig } from './config.js';
import { buildDecoder, type BuildOptions, type DecoderModel, type WeightDType } from './decoder.js';
import { native } from '../native.js';
import { Rng } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';

/** `quantize`: each projection goes straight into its quantized form as it is made (QLoRA benchmarks). */
export function initModel(
  config: ModelConfig,
  dtype: WeightDType,
  seed: number,
  std = 0.02,
  quantize?: BuildOptions['quantize'],
): DecoderModel {
  const rng = new Rng(seed);
  return buildDecoder(
    config,
    (name, shape, dt) => {
      // values go straight into native memory, a chunk at a time: a whole f32 copy of a bf16 weight (2 GB for
      // Llama-3-8B's embeddings) would set the peak of the load
      const t = Tensor.empty(shape, dt);
      const seed = rng.nextU32(); // each tensor its own stream, drawn in Hugging Face order
      const chunk = new Float32Array(Math.min(t.size, 1 << 20));
      for (let start = 0; start < t.size; start += chunk.length) {
        const values = chunk.subarray(0, Math.min(chunk.length, t.size - start));
        // norms start as the identity: weight 1, or 0 where the family scales by (1 + weight) (Qwen3.5's gated
        // norm scales by weight); Gated DeltaNet's dt_bias 1 and A_log = log(A), A uniform in [1, 16)
        if (name.endsWith('linear_attn.norm.weight') || name.endsWith('.dt_bias')) values.fill(1);
        else if (name.endsWith('norm.weight')) values.fill(config.normOffset ? 0 : 1);
        else if (name.endsWith('.A_log')) {
          const draws = new Rng(seed);
          values.forEach((_, i) => (values[i] = Math.log(1 + 15 * draws.uniform())));
        } else if (name.endsWith('.bias')) values.fill(0);
        else native.fillNormal(values, values.length, seed, start, std);
        if (t.dtype === 'f32') t.data.set(values, start);
        else native.toBf16(values, t.data.subarray(start, start + values.length) as Uint16Array, values.length);
      }
      return t;
    },
    { dtype, quantize },
  );
}

export function presetConfig(name: string): ModelConfig {
  const raw = presets[name];
  if (!raw) throw new Error(`unknown preset ${name}`);
  return parseModelConfig(raw, `preset:${name}`);
}
