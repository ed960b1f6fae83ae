/**
 * What a model family is: the config.json model_type values it reads, Hugging Face's defaults for their keys,
 * the architecture options it sets for the shared decoder (decoder.ts), where its checkpoints keep their
 * tensors, its GGUF layout for llama.cpp and the LLaMA-Factory template its chat_template implies. One module
 * per family under families/, registered in families/index.ts.
 */
import {
  configError,
  type ArchitectureOptions,
  type BaseConfig,
  type ModelConfig,
  type RawModelConfig,
} from './config.js';

/** A GGUF metadata value: an unsigned count, a float, a string or an array of signed integers. */
export type GgufValue = { u32: number } | { f32: number } | { str: string } | { i32s: number[] };

/** How llama.cpp names and lays out this family in a GGUF file. */
export interface GgufLayout {
  /** general.architecture */
  arch: string;
  /** llama.cpp's llama arch rotates interleaved pairs: q and k rows are permuted per head on export */
  interleaveQK: boolean;
  /** added to every norm weight on export (llama.cpp stores Gemma's 1 + weight) */
  normShift: number;
  /**
   * Why llama.cpp would compute this model otherwise (it fixes some options per architecture: Gemma 3's
   * local/global pattern, SmolLM3's no-rope step), or null when the file can say everything.
   */
  unsupported(c: ModelConfig): string | null;
  /** keys after `<arch>.` beyond the ones every architecture has (windows, soft-caps, rope scaling) */
  keys?(c: ModelConfig): Record<string, GgufValue>;
  /** tensors beyond the parameters (Phi-3's longrope factors) */
  tensors?(c: ModelConfig): { name: string; values: Float32Array }[];
  /**
   * llama.cpp's names for the family's own layer tensors, by the Hugging Face name after `model.layers.N.`
   * (Qwen3.5's `linear_attn.A_log` is `ssm_a`); they win over the shared table
   */
  layerTensorNames?: Record<string, string>;
  /**
   * a tensor's values as llama.cpp's converter writes them (Qwen3.5's A_log as -exp(A_log)), final: no norm shift
   * or rotary reordering follows; null for a tensor the shared rules handle
   */
  convert?(hfName: string, values: Float32Array, shape: readonly number[], c: ModelConfig): Float32Array | null;
}

/** The model's one rotary setting when every layer shares it (null otherwise, or when a layer has none). */
export function sharedRope(c: ModelConfig): ArchitectureOptions['layerSpecs'][number]['rope'] {
  const first = c.layerSpecs[0].rope;
  return c.layerSpecs.every((l) => l.rope === first) ? first : null;
}

/** The plain case: one rotary setting without scaling on every layer, no windows. */
export function plainLayers(c: ModelConfig): string | null {
  const rope = sharedRope(c);
  if (!rope) return 'with per-layer rotary settings';
  if (c.layerSpecs.some((l) => l.window !== null)) return 'with sliding windows';
  if (rope.scaling) return 'with rope scaling';
  return null;
}

export interface Family {
  /** the id configs and messages name it by */
  id: string;
  /** what users know it as */
  title: string;
  /** config.json model_type values read by this family */
  modelTypes: readonly string[];
  /** Hugging Face's config class defaults for keys a config.json may leave out */
  defaults: Record<string, unknown>;
  /** the text model's keys: a multimodal checkpoint's text_config; the file itself otherwise */
  textConfig(raw: Record<string, unknown>, file: string): Record<string, unknown>;
  /** the architecture options, from the parsed keys; refuses options it does not implement by name */
  architecture(c: RawModelConfig, base: BaseConfig, file: string): ArchitectureOptions;
  /**
   * Where the checkpoint keeps our parameter `name` (Hugging Face's text-model names), given the names the
   * checkpoint holds; absent when they are the same.
   */
  checkpointName?(names: readonly string[]): (name: string) => string;
  /** the GGUF layout, or null when export to GGUF is not available for this family */
  gguf: GgufLayout | null;
  /** the LLaMA-Factory template a tokenizer's chat_template implies, or null when it says nothing */
  template(chatTemplate: string): string | null;
}

/** Every layer alike: one window (or none) and the model's rotary setting. */
export function uniformLayers(base: BaseConfig, spec: ArchitectureOptions['layerSpecs'][number]) {
  return Array.from({ length: base.numLayers }, () => spec);
}

/**
 * Family.textConfig for a multimodal checkpoint (model_type `outer`) whose text model's keys sit under text_config:
 * those keys, named as the text model's own config names itself; tie_word_embeddings falls back to the outer
 * config's, then to the text model's default.
 */
export function nestedTextConfig(outer: string, text: { modelType: string; architecture: string; tied: boolean }) {
  return (raw: Record<string, unknown>, file: string): Record<string, unknown> => {
    if (raw.model_type !== outer) return raw;
    const keys = raw.text_config;
    if (!keys || typeof keys !== 'object')
      throw configError(file, 'text_config', `a ${outer} config needs text_config`);
    const t = keys as Record<string, unknown>;
    return {
      ...t,
      model_type: text.modelType,
      architectures: [text.architecture],
      tie_word_embeddings: t.tie_word_embeddings ?? raw.tie_word_embeddings ?? text.tied,
    };
  };
}

/** Where a multimodal checkpoint keeps its text model: the prefix of model.* names and the LM head's name. */
export interface TextWeightsPrefix {
  model: string;
  head: string;
}

/**
 * Family.checkpointName for multimodal checkpoints whose text model sits under a prefix (Gemma 3, Qwen3.5): the
 * first prefix whose names the checkpoint holds; a text-only checkpoint keeps the plain names.
 */
export function nestedTextWeights(prefixes: readonly TextWeightsPrefix[]) {
  return (names: readonly string[]) => {
    const found = prefixes.find((p) => names.some((n) => n.startsWith(p.model)));
    if (!found) return (n: string) => n;
    return (n: string) => (n === 'lm_head.weight' ? found.head : n.replace(/^model\./, found.model));
  };
}
