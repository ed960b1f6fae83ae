/**
 * PEFT's adapter folder: adapter_config.json + adapter_model.safetensors with names like
 * base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight. Loading attaches the adapter to a
 * model; saving writes what PEFT's PeftModel.from_pretrained reads.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { LmfError } from '../errors.js';
import { notice } from '../util/notice.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { writeTextAtomic } from '../io/atomic.js';
import type { CausalLM } from '../models/registry.js';
import { Rng } from '../tensor/random.js';
import { attachLora, savedModuleParameters, type LoraLayer, type LoraSettings } from './lora.js';
import { initPissa, pissaIterations } from './pissa.js';
import type { Tensor } from '../tensor/tensor.js';

const PREFIX = 'base_model.model.';

const adapterConfigSchema = z
  .object({
    peft_type: z.string(),
    r: z.number().int().positive(),
    lora_alpha: z.number().positive(),
    lora_dropout: z.number().min(0).max(1).optional(),
    target_modules: z.union([z.array(z.string()), z.string()]),
    use_rslora: z.boolean().optional(),
    use_dora: z.boolean().optional(),
    bias: z.string().optional(),
    fan_in_fan_out: z.boolean().optional(),
    modules_to_save: z.array(z.string()).nullish(),
    rank_pattern: z.record(z.string(), z.number()).optional(),
    alpha_pattern: z.record(z.string(), z.number()).optional(),
    init_lora_weights: z.union([z.boolean(), z.string()]).optional(),
    base_model_name_or_path: z.string().nullish(),
  })
  .loose();

export type AdapterConfig = z.infer<typeof adapterConfigSchema>;

export function readAdapterConfig(dir: string): AdapterConfig {
  const file = path.join(dir, 'adapter_config.json');
  if (!existsSync(file)) {
    throw new LmfError('adapter_missing', 'adapter_config.json not found: this is not a PEFT adapter folder', {
      file,
      hint: 'adapter_name_or_path must name a folder with adapter_config.json and adapter_model.safetensors',
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new LmfError('bad_adapter', `adapter_config.json is not valid JSON (${(err as Error).message})`, { file });
  }
  const parsed = adapterConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new LmfError('bad_adapter', issue.message, { file, key: issue.path.join('.') });
  }
  const c = parsed.data;
  const unsupported = (key: string, why: string) => new LmfError('bad_adapter', why, { file, key });
  if (c.peft_type !== 'LORA') throw unsupported('peft_type', `peft_type ${c.peft_type} is not supported (LORA only)`);
  if (c.fan_in_fan_out)
    throw unsupported('fan_in_fan_out', 'fan_in_fan_out adapters (GPT-2 Conv1D) do not apply to LLaMA-family models');
  if (c.bias && c.bias !== 'none') throw unsupported('bias', `bias "${c.bias}" is not supported (none only)`);
  return c;
}

/** The model a path or Hub id names, for comparison: "org/name" from a Hub cache folder, else the last part. */
function modelName(p: string): string {
  const cached = /models--([^/\\]+?)--([^/\\]+)/.exec(p);
  return (cached ? cached[2] : path.basename(path.resolve(p))).toLowerCase();
}

/**
 * A warning when the adapter was trained on another base than `modelPath` (adapter_config.json's
 * base_model_name_or_path, a folder or a Hub id), or null when they agree or the adapter names none.
 */
export function adapterBaseMismatch(dir: string, modelPath: string): string | null {
  const base = readAdapterConfig(dir).base_model_name_or_path;
  if (!base) return null;
  if (path.resolve(base) === path.resolve(modelPath) || modelName(base) === modelName(modelPath)) return null;
  return `the adapter ${dir} was trained on ${base} (adapter_config.json base_model_name_or_path) and is loaded onto ${modelPath}`;
}

export function settingsFromConfig(c: AdapterConfig): LoraSettings {
  return {
    r: c.r,
    alpha: c.lora_alpha,
    dropout: c.lora_dropout ?? 0,
    targetModules: c.target_modules,
    useRslora: c.use_rslora ?? false,
    useDora: c.use_dora ?? false,
    rankPattern: c.rank_pattern,
    alphaPattern: c.alpha_pattern,
    modulesToSave: c.modules_to_save ?? undefined,
    initLoraWeights: typeof c.init_lora_weights === 'string' ? c.init_lora_weights : true,
  };
}

/** init_lora_weights values whose adapters load onto the base as they are (the rest rewrite the base first). */
const plainInits = new Set<unknown>([undefined, true, false, 'gaussian']);

/**
 * Attaches the adapter in `dir` and fills A and B from its file; with the base's path, warns when the adapter
 * was trained on another base. A PiSSA adapter first turns the base into the residual its training started from.
 */
export function loadPeftAdapter(model: CausalLM, dir: string, basePath?: string): Map<string, LoraLayer> {
  const mismatch = basePath === undefined ? null : adapterBaseMismatch(dir, basePath);
  if (mismatch) notice(mismatch);
  const config = readAdapterConfig(dir);
  const settings = settingsFromConfig(config);
  const pissa = pissaIterations(settings.initLoraWeights);
  if (pissa === undefined && !plainInits.has(config.init_lora_weights)) {
    throw new LmfError('unsupported', `init_lora_weights "${config.init_lora_weights}" is not supported`, {
      file: path.join(dir, 'adapter_config.json'),
      key: 'init_lora_weights',
      hint: 'this initialisation rewrites the base model at load; convert the adapter to plain LoRA with PEFT',
    });
  }
  const layers = attachLora(model, settings, new Rng(0));
  if (pissa !== undefined) initPissa(model, layers, pissa);
  const file = path.join(dir, 'adapter_model.safetensors');
  if (!existsSync(file)) {
    throw new LmfError('adapter_missing', 'adapter_model.safetensors not found', {
      file,
      hint: 'LMFactory reads safetensors adapters; convert adapter_model.bin with PEFT first',
    });
  }
  const st = SafetensorsFile.open(file);
  try {
    const expected = new Set<string>();
    for (const [name, layer] of layers) {
      for (const [part, t] of [
        ['lora_A', layer.A],
        ['lora_B', layer.B],
      ] as const) {
        const key = `${PREFIX}${name}.${part}.weight`;
        expected.add(key);
        const entry = st.entries.get(key);
        if (!entry)
          throw new LmfError('missing_tensor', 'the adapter lacks a tensor its config implies', { file, tensor: key });
        if (entry.shape.length !== 2 || entry.shape[0] !== t.shape[0] || entry.shape[1] !== t.shape[1]) {
          throw new LmfError('shape_mismatch', `shape [${entry.shape}] in the file, [${t.shape}] expected`, {
            file,
            tensor: key,
            hint: 'the adapter was trained for a different base model or rank',
          });
        }
        const loaded = st.read(key, 'f32');
        t.data.set(loaded.data as Float32Array);
        loaded.dispose();
      }
    }
    for (const [name, layer] of layers) {
      if (!layer.magnitude) continue;
      // PEFT writes the DoRA magnitude as ….lora_magnitude_vector (older files: ….lora_magnitude_vector.weight)
      const key = [`${PREFIX}${name}.lora_magnitude_vector`, `${PREFIX}${name}.lora_magnitude_vector.weight`].find(
        (k) => st.entries.has(k),
      );
      if (!key)
        throw new LmfError('missing_tensor', 'the DoRA adapter lacks a magnitude vector', {
          file,
          tensor: `${PREFIX}${name}.lora_magnitude_vector`,
        });
      expected.add(key);
      const loaded = st.read(key, 'f32');
      if (loaded.size !== layer.magnitude.size)
        throw new LmfError('shape_mismatch', `magnitude of ${loaded.size}, ${layer.magnitude.size} expected`, {
          file,
          tensor: key,
        });
      layer.magnitude.data.set(loaded.data as Float32Array);
      loaded.dispose();
    }
    for (const [param, t] of savedModuleParameters(model, config.modules_to_save ?? [])) {
      // PEFT drops "modules_to_save.default." from the saved names; accept both spellings
      const module = param.replace(/\.(weight|bias)$/, '');
      const suffix = param.slice(module.length);
      const key = [`${PREFIX}${param}`, `${PREFIX}${module}.modules_to_save.default${suffix}`].find((k) =>
        st.entries.has(k),
      );
      if (!key)
        throw new LmfError('missing_tensor', 'the adapter lacks a module its modules_to_save names', {
          file,
          tensor: `${PREFIX}${param}`,
        });
      expected.add(key);
      const loaded = st.read(key, t.dtype === 'bf16' ? 'bf16' : 'f32');
      if (loaded.size !== t.size)
        throw new LmfError('shape_mismatch', `${loaded.size} values, ${t.size} expected`, { file, tensor: key });
      (t.data as Float32Array | Uint16Array).set(loaded.data as Float32Array | Uint16Array);
      loaded.dispose();
    }
    const extra = [...st.entries.keys()].filter((k) => !expected.has(k));
    if (extra.length) {
      throw new LmfError(
        'unexpected_tensor',
        `the adapter holds ${extra.length} tensor(s) no module of this model takes`,
        {
          file,
          tensor: extra[0],
          hint: 'the adapter was trained for a different base model',
        },
      );
    }
  } finally {
    st.close();
  }
  return layers;
}

/**
 * Writes adapter_model.safetensors (f32) and adapter_config.json, both atomically; `modules` are the
 * parameters of s.modulesToSave, stored whole under their own names.
 */
export function savePeftAdapter(
  dir: string,
  layers: Map<string, LoraLayer>,
  s: LoraSettings,
  baseModel: string,
  modules: [string, Tensor][] = [],
): void {
  const tensors = new Map<string, TensorToWrite>();
  for (const [param, t] of modules) tensors.set(`${PREFIX}${param}`, { tensor: t, dtype: 'F32' });
  const targets = new Set<string>();
  for (const [name, layer] of layers) {
    tensors.set(`${PREFIX}${name}.lora_A.weight`, { tensor: layer.A, dtype: 'F32' });
    tensors.set(`${PREFIX}${name}.lora_B.weight`, { tensor: layer.B, dtype: 'F32' });
    if (layer.magnitude)
      tensors.set(`${PREFIX}${name}.lora_magnitude_vector`, { tensor: layer.magnitude, dtype: 'F32' });
    targets.add(name.split('.').pop()!);
  }
  writeSafetensors(path.join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: s.r,
    lora_alpha: s.alpha,
    lora_dropout: s.dropout,
    target_modules: [...targets].sort(),
    bias: 'none',
    use_rslora: s.useRslora,
    use_dora: s.useDora ?? false,
    fan_in_fan_out: false,
    init_lora_weights: s.initLoraWeights ?? true,
    inference_mode: true,
    modules_to_save: s.modulesToSave?.length ? s.modulesToSave : null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: s.rankPattern ?? {},
    alpha_pattern: s.alphaPattern ?? {},
    revision: null,
  };
  writeTextAtomic(path.join(dir, 'adapter_config.json'), `${JSON.stringify(config, null, 2)}\n`);
}
