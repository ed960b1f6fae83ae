/**
 * A model ready to answer: the base folder, its adapters (live, none merged: several are summed per layer;
 * export merges them all), the tokenizer and the chat template.
 * Shared by `lmf chat`, `lmf api`, `lmf eval`, `lmf score` and prediction.
 */
import { linearModules, mergeLora, stackOnto } from '../adapters/lora.js';
import { loadPeftAdapter, readAdapterConfig } from '../adapters/peft.js';
import { resolveTemplate } from '../data/templates/registry.js';
import type { AnyTemplate } from '../data/processors/common.js';
import { checkTokenizerFits, HfTokenizer } from '../data/tokenizer.js';
import type { Message } from '../data/messages.js';
import { loadModel, type CausalLM } from '../models/registry.js';
import type { GenerationRequest } from './generate.js';
import {
  fromKeys,
  mergeSettings,
  readGenerationConfig,
  stopIdsOf,
  type GenerationConfigFile,
  type GenerationSettings,
} from './settings.js';
import type { TrainConfig } from '../config/schema.js';
import type { RopeScalingKind } from '../wire.js';
import type { BuildOptions } from '../models/decoder.js';
import { quantizeFor } from '../models/quant/quantize.js';
import { readModelConfig } from '../models/config.js';

export interface InferenceSpec {
  model: string;
  adapters?: string[];
  /** a named template, or null/undefined for the tokenizer's chat_template */
  template?: string | null;
  /** storage of the base weights; matmuls run in the same precision */
  dtype?: 'f32' | 'bf16';
  /** fold every adapter into the weights, the last one too (export) */
  mergeAll?: boolean;
  /** LLaMA-Factory's rope_scaling key: stretch the context to modelMaxLength (null: by 2, as at inference) */
  ropeScaling?: { kind: RopeScalingKind; modelMaxLength: number | null } | null;
  /** quantization_bit: the projections quantized as they load */
  quantize?: BuildOptions['quantize'];
}

export interface InferenceModel {
  model: CausalLM;
  tokenizer: HfTokenizer;
  /** resolved on first use, so a model without a chat template can still be exported or scored by ids */
  readonly template: AnyTemplate;
  dtype: 'f32' | 'bf16';
  generationConfig: GenerationConfigFile;
  dispose(): void;
}

export interface ChatOptions {
  system?: string;
  /** JSON of tool schemas */
  tools?: string;
  settings: GenerationSettings;
  stop?: string[];
  seed?: number;
}

/** The generation request for a conversation that ends with a user (or tool) turn. */
export function chatRequest(m: InferenceModel, messages: Message[], o: ChatOptions): GenerationRequest {
  const { maxNewTokens, ...sampling } = o.settings;
  return {
    prompt: m.template.encodePrompt(m.tokenizer, messages, { system: o.system, tools: o.tools }),
    sampling,
    maxNewTokens,
    stopIds: stopIdsOf(m, m.generationConfig),
    stopStrings: o.stop,
    seed: o.seed,
  };
}

/**
 * The model a config names (model_name_or_path, adapter_name_or_path, template, infer_dtype, rope_scaling);
 * `cutoffLen` when it serves a training run (do_predict), whose rope stretch follows cutoff_len.
 */
export function loadFromConfig(c: TrainConfig, cutoffLen: number | null = null): InferenceModel {
  const torchDtype = readModelConfig(c.model_name_or_path).raw.torch_dtype;
  const dtype = inferDtype(c.infer_dtype, typeof torchDtype === 'string' ? torchDtype : undefined);
  return loadInference({
    model: c.model_name_or_path,
    adapters: c.adapter_name_or_path,
    template: c.template,
    dtype,
    ropeScaling: c.rope_scaling ? { kind: c.rope_scaling, modelMaxLength: cutoffLen } : null,
    quantize: quantizeFor(c.quantization_bit, c.quantization_type, c.double_quantization, dtype),
  });
}

/** Generation settings of a config over the model's generation_config.json. */
export function configSettings(c: TrainConfig, m: InferenceModel): GenerationSettings {
  return mergeSettings(m.generationConfig.settings, fromKeys(c));
}

export function loadInference(spec: InferenceSpec): InferenceModel {
  const dtype = spec.dtype ?? 'f32';
  const tokenizer = HfTokenizer.fromDir(spec.model);
  checkTokenizerFits(tokenizer, readModelConfig(spec.model).vocabSize, spec.model);
  const { model } = loadModel(spec.model, { dtype, ropeScaling: spec.ropeScaling, quantize: spec.quantize });
  try {
    const adapters = spec.adapters ?? [];
    // DoRA rescales the whole adapted weight, so it cannot be one term of a sum: such stacks are merged in order
    const stack = !spec.mergeAll && !adapters.some((dir) => readAdapterConfig(dir).use_dora);
    adapters.forEach((dir, i) => {
      const previous = new Map(linearModules(model).map(([, lin]) => [lin, lin.delta]));
      const layers = loadPeftAdapter(model, dir, spec.model);
      if (stack) stackOnto(previous, layers, model);
      else if (spec.mergeAll || i < adapters.length - 1) mergeLora(model, layers);
    });
  } catch (e) {
    model.dispose();
    throw e;
  }
  let template: AnyTemplate | null = null;
  return {
    model,
    tokenizer,
    dtype,
    generationConfig: readGenerationConfig(spec.model),
    dispose: () => model.dispose(),
    get template() {
      template ??= resolveTemplate(spec.template, tokenizer);
      return template;
    },
  };
}

/**
 * LLaMA-Factory's infer_dtype spellings → our storage dtype (auto: bf16 when the checkpoint is bf16). float16
 * runs in f32: the CPU has no f16 arithmetic, and f32 holds every f16 value exactly.
 */
export function inferDtype(value: string | undefined, checkpointDtype: string | undefined): 'f32' | 'bf16' {
  switch (value ?? 'auto') {
    case 'bfloat16':
    case 'bf16':
      return 'bf16';
    case 'float32':
    case 'f32':
    case 'float16':
    case 'fp16':
    case 'f16':
      return 'f32';
    default:
      return checkpointDtype === 'bfloat16' ? 'bf16' : 'f32';
  }
}
