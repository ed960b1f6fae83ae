/** Loading a Hugging Face folder into the decoder its family describes. */
import { readModelConfig } from './config.js';
import { buildDecoder, type BuildOptions, type DecoderModel } from './decoder.js';
import { bnbCompanions, checkpointQuantization, readBnbQuantized, readBnbWeight } from './quant/bnb-checkpoint.js';
import { pushAll } from '../util/arrays.js';
import { panelCompute } from '../tensor/quantized.js';
import { familyById } from './families/index.js';
import type { RopeScalingKind } from '../wire.js';
import { stretchContext } from './rope.js';
import { WeightFolder } from './weights.js';
import { notice } from '../util/notice.js';

/** The causal language model every family loads into. */
export type CausalLM = DecoderModel;

export interface LoadedModel {
  model: CausalLM;
  /** tensors in the folder that the architecture does not use (reported, not fatal, as transformers does) */
  unused: string[];
}

/** Tensors that checkpoints carry but the model recomputes. */
const derived = /(^|\.)rotary_emb\.inv_freq$/;

export interface LoadOptions extends BuildOptions {
  /** LLaMA-Factory's rope_scaling key: stretch the context for this cutoff_len (null: inference, by 2) */
  ropeScaling?: { kind: RopeScalingKind; modelMaxLength: number | null } | null;
}

export function loadModel(dir: string, opts: LoadOptions = { dtype: 'f32' }): LoadedModel {
  const stretch = opts.ropeScaling;
  let quantized: string | null = null;
  const config = readModelConfig(dir, (raw) => {
    // a bitsandbytes folder's weights come back dequantised: the model (and anything saved from it) is plain
    quantized = checkpointQuantization(raw, dir);
    const { quantization_config: _, ...plain } = raw;
    if (!stretch) return plain;
    const stretched = stretchContext(plain, stretch.kind, stretch.modelMaxLength);
    notice(`${dir}: ${stretched.message}`);
    return stretched.raw ?? plain;
  });
  const family = familyById(config.family);
  const weights = WeightFolder.open(dir);
  try {
    const rename = family.checkpointName?.(weights.names()) ?? ((n: string) => n);
    const companions: string[] = [];
    const model = buildDecoder(
      config,
      (name, shape, dtype) => {
        const stored = rename(name);
        const dequantized = quantized ? readBnbWeight(weights, stored, shape, dtype) : null;
        if (dequantized) pushAll(companions, bnbCompanions(weights, stored));
        return dequantized ?? weights.read(stored, shape, dtype);
      },
      {
        ...opts,
        // quantization_bit on a bitsandbytes folder keeps its own codes and statistics
        quantizedSource: (name, shape) => {
          if (!quantized) return null;
          const compute = panelCompute(opts.dtype === 'bf16' ? 'bf16' : 'f32');
          const stored = readBnbQuantized(weights, rename(name), shape, compute);
          if (stored) pushAll(companions, bnbCompanions(weights, rename(name)));
          return stored;
        },
      },
    );
    if (companions.length && !opts.quantize)
      notice(
        `${dir}: bitsandbytes weights dequantised to ${opts.dtype} at load (quantization_bit keeps them quantized)`,
      );
    const used = new Set(
      [...model.namedParameters(), ...model.quantizedWeights()].map(([n]) => rename(n)).concat(companions),
    );
    if (config.tieWordEmbeddings) used.add(rename('lm_head.weight'));
    const unused = weights.names().filter((n) => !used.has(n) && !derived.test(n));
    if (unused.length)
      notice(`${dir}: ${unused.length} tensors not used by the ${family.title} model (${groups(unused)})`);
    return { model, unused };
  } finally {
    weights.close();
  }
}

/** Names grouped by their first two parts (model.vision_tower.*), the first few listed. */
function groups(names: string[]): string {
  const prefixes = [...new Set(names.map((n) => n.split('.').slice(0, 2).join('.')))];
  const shown = prefixes.slice(0, 3).map((p) => `${p}.*`);
  return prefixes.length > 3 ? `${shown.join(', ')} and ${prefixes.length - 3} more` : shown.join(', ');
}
