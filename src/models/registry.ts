/** Model families by config.json model_type, and loading a Hugging Face folder into one. */
import { readModelConfig, type ModelConfig } from './config.js';
import { loadLlama, type BuildOptions, type LlamaModel } from './llama.js';
import { WeightFolder } from './weights.js';

export type CausalLM = LlamaModel;

const families: Record<ModelConfig['modelType'], (c: ModelConfig, w: WeightFolder, o: BuildOptions) => CausalLM> = {
  llama: loadLlama,
  mistral: loadLlama,
  qwen2: loadLlama,
};

export interface LoadedModel {
  model: CausalLM;
  /** tensors in the folder that the architecture does not use (reported, not fatal, as transformers does) */
  unused: string[];
}

/** Tensors that checkpoints carry but the model recomputes. */
const derived = /(^|\.)rotary_emb\.inv_freq$/;

export function loadModel(dir: string, opts: BuildOptions = { dtype: 'f32' }): LoadedModel {
  const config = readModelConfig(dir);
  const weights = WeightFolder.open(dir);
  try {
    const model = families[config.modelType](config, weights, opts);
    const used = new Set(model.namedParameters().map(([n]) => n));
    if (config.tieWordEmbeddings) used.add('lm_head.weight');
    const unused = weights.names().filter((n) => !used.has(n) && !derived.test(n));
    return { model, unused };
  } finally {
    weights.close();
  }
}
