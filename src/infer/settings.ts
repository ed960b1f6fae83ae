/**
 * Generation settings in order of precedence: the request (API, chat), the YAML config, the model folder's
 * generation_config.json, then LLaMA-Factory's defaults. And the token ids that end an answer.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { LmfError } from '../errors.js';
import type { SamplingParams } from './sampling.js';
import type { InferenceModel } from './load.js';

export interface GenerationSettings extends SamplingParams {
  maxNewTokens: number;
}

/** LLaMA-Factory's generating arguments' defaults. */
const builtIn: GenerationSettings = {
  doSample: true,
  temperature: 0.95,
  topP: 0.7,
  topK: 50,
  repetitionPenalty: 1,
  maxNewTokens: 1024,
};

const generationConfigSchema = z.looseObject({
  do_sample: z.boolean().optional(),
  temperature: z.number().optional(),
  top_p: z.number().optional(),
  top_k: z.number().int().optional(),
  repetition_penalty: z.number().optional(),
  max_new_tokens: z.number().int().optional(),
  eos_token_id: z.union([z.number().int(), z.array(z.number().int())]).nullish(),
});

export interface GenerationConfigFile {
  settings: Partial<GenerationSettings>;
  eosIds: number[];
}

/** generation_config.json of a model folder (absent: no settings). */
export function readGenerationConfig(dir: string): GenerationConfigFile {
  const file = path.join(dir, 'generation_config.json');
  if (!existsSync(file)) return { settings: {}, eosIds: [] };
  let parsed;
  try {
    parsed = generationConfigSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  } catch (err) {
    throw new LmfError(
      'bad_generation_config',
      `generation_config.json is not valid JSON (${(err as Error).message})`,
      { file },
    );
  }
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new LmfError('bad_generation_config', issue.message, { file, key: issue.path.join('.') });
  }
  const g = parsed.data;
  const settings = fromKeys(g);
  const eos = g.eos_token_id;
  return { settings, eosIds: eos === null || eos === undefined ? [] : Array.isArray(eos) ? eos : [eos] };
}

/** The keys, where set (the YAML config and generation_config.json spell them alike). */
export interface GenerationKeys {
  do_sample?: boolean;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  repetition_penalty?: number;
  max_new_tokens?: number;
}

export function fromKeys(k: GenerationKeys): Partial<GenerationSettings> {
  const out: Partial<GenerationSettings> = {};
  if (k.do_sample !== undefined) out.doSample = k.do_sample;
  if (k.temperature !== undefined) out.temperature = k.temperature;
  if (k.top_p !== undefined) out.topP = k.top_p;
  if (k.top_k !== undefined) out.topK = k.top_k;
  if (k.repetition_penalty !== undefined) out.repetitionPenalty = k.repetition_penalty;
  if (k.max_new_tokens !== undefined) out.maxNewTokens = k.max_new_tokens;
  return out;
}

/** Later layers win. */
export function mergeSettings(...layers: Partial<GenerationSettings>[]): GenerationSettings {
  return Object.assign({ ...builtIn }, ...layers) as GenerationSettings;
}

/** Every id that ends an answer: the template's stop tokens, the model's EOS ids, generation_config's. */
export function stopIdsOf(m: InferenceModel, generationConfig: GenerationConfigFile): number[] {
  return [...new Set([...m.template.stopIds(m.tokenizer), ...m.model.config.eosTokenIds, ...generationConfig.eosIds])];
}
