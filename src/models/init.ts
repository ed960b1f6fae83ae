/**
 * Fresh parameters for a model built from a config alone (pre-training from scratch, benchmarks, tests):
 * matrices ~ N(0, initializer_range), norm weights 1, biases 0, as Hugging Face's _init_weights.
 */
import { presets } from './presets.js';
import { parseModelConfig, type ModelConfig } from './config.js';
import { buildDecoder, type BuildOptions, type DecoderModel, type WeightDType } from './decoder.js';
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
      // values go straight into native memory: a JavaScript copy of every weight would double the peak
      const t = Tensor.empty(shape, 'f32');
      const values = t.data;
      // norms start as the identity: weight 1, or 0 where the family scales by (1 + weight)
      if (name.endsWith('norm.weight')) values.fill(config.normOffset ? 0 : 1);
      else if (name.endsWith('.bias')) values.fill(0);
      else for (let i = 0; i < values.length; i++) values[i] = rng.normal() * std;
      if (dt === 'f32') return t;
      const low = t.toBf16();
      t.dispose();
      return low;
    },
    { dtype, quantize },
  );
}

export function presetConfig(name: string): ModelConfig {
  const raw = presets[name];
  if (!raw) throw new Error(`unknown preset ${name}`);
  return parseModelConfig(raw, `preset:${name}`);
}
