/**
 * Fine-tuning methods: which parameters train, with which learning rate and weight decay.
 * full: everything; freeze: the last (or first) N layers' chosen modules plus extra modules; lora: adapters
 * on the chosen projections (new, or continued from adapter_name_or_path). Weight decay applies to matrices
 * only, never to biases or norm weights (Hugging Face Trainer).
 */
import {
  attachLora,
  mergeLora,
  projectionNames,
  savedModuleParameters,
  type LoraLayer,
  type LoraSettings,
} from '../adapters/lora.js';
import { loadPeftAdapter, readAdapterConfig, settingsFromConfig } from '../adapters/peft.js';
import { initPissa, pissaInitName, snapshotLayers } from '../adapters/pissa.js';
import type { TrainConfig } from '../config/schema.js';
import { LmfError } from '../errors.js';
import { notice } from '../util/notice.js';
import { expandedLayerIds } from '../models/expand.js';
import type { CausalLM } from '../models/registry.js';
import { Rng } from '../tensor/random.js';
import { persistent, type Tensor } from '../tensor/tensor.js';
import type { ParamGroup } from './adamw.js';

/**
 * With bf16, matmuls read a bf16 copy of each trained matrix (AdamW refreshes the copies after each update);
 * LoRA's small A and B, vectors and norms stay f32. The one place that decides which weights get a copy.
 */
export function attachBf16Copies(trainable: [string, Tensor<'f32'>][]): void {
  for (const [name, p] of trainable)
    if (p.shape.length === 2 && !/\.lora_[AB]\./.test(name) && !p.shadow) p.shadow = persistent(() => p.toBf16());
}

export interface MethodSetup {
  groups: ParamGroup[];
  /** name -> tensor of every trainable parameter (checkpoint order) */
  trainable: [string, Tensor<'f32'>][];
  lora: {
    layers: Map<string, LoraLayer>;
    settings: LoraSettings;
    /** PiSSA's starting adapter, kept when pissa_convert asks for a plain LoRA at the end */
    pissaStart?: Map<string, { A: Float32Array; B: Float32Array }>;
  } | null;
}

function decays(name: string, t: Tensor): boolean {
  return t.shape.length >= 2 && !name.endsWith('.bias') && !name.includes('norm');
}

function groupsOf(named: [string, Tensor<'f32'>][], c: TrainConfig, lrOf: (name: string) => number): ParamGroup[] {
  const groups = new Map<string, ParamGroup>();
  for (const [name, t] of named) {
    const lr = lrOf(name);
    const wd = decays(name, t) ? c.weight_decay : 0;
    const key = `${lr}|${wd}`;
    if (!groups.has(key)) groups.set(key, { params: [], lr, weightDecay: wd });
    groups.get(key)!.params.push(t);
  }
  return [...groups.values()];
}

/** Layers whose parameters train in freeze mode: the last n (n > 0) or the first -n (n < 0). */
function freezeLayers(numLayers: number, n: number): Set<number> {
  if (n === 0 || Math.abs(n) > numLayers) {
    throw new LmfError(
      'bad_value',
      `freeze_trainable_layers ${n} must be between -${numLayers} and ${numLayers}, not 0`,
      { key: 'freeze_trainable_layers' },
    );
  }
  const idx = n > 0 ? Array.from({ length: n }, (_, i) => numLayers - n + i) : Array.from({ length: -n }, (_, i) => i);
  return new Set(idx);
}

/**
 * The LoRA targets: lora_target's names, or with use_llama_pro those names on the expanded blocks only (a
 * regular expression over module names, as PEFT writes one in adapter_config.json).
 */
function loraTargets(model: CausalLM, c: TrainConfig): string[] | string {
  const everything = c.lora_target.length === 1 && c.lora_target[0] === 'all';
  if (!c.use_llama_pro) return everything ? 'all' : c.lora_target;
  const names = everything ? projectionNames(model) : c.lora_target;
  const ids = expandedLayerIds(model.layers.length, c.freeze_trainable_layers);
  return `model\\.layers\\.(${ids.join('|')})\\.(self_attn|mlp)\\.(${names.join('|')})`;
}

/** LLaMA-Factory's refusals for PiSSA: LoRA only, and no stage whose reference model is the base with adapters off. */
function checkPissa(c: TrainConfig): void {
  if (!c.pissa_init) {
    if (c.pissa_convert) notice('pissa_convert: without pissa_init there is no PiSSA adapter to convert');
    return;
  }
  const refuse = (message: string, key: string) => {
    throw new LmfError('bad_value', message, { key, hint: 'set pissa_init: false' });
  };
  if (c.finetuning_type !== 'lora') refuse('pissa_init is only valid for LoRA training', 'finetuning_type');
  const usesReference = c.stage === 'kto' || (c.stage === 'dpo' && !['orpo', 'simpo'].includes(c.pref_loss));
  if (usesReference)
    refuse(`PiSSA cannot train stage ${c.stage}: its reference model is the base, which PiSSA changes`, 'stage');
  if (c.adapter_name_or_path?.length && !c.create_new_adapter)
    notice('pissa_init: the adapter from adapter_name_or_path is trained further; PiSSA only starts new adapters');
}

export function setupMethod(model: CausalLM, c: TrainConfig): MethodSetup {
  checkPissa(c);
  const all = model.namedParameters();
  for (const [, p] of all) p.requiresGrad = false;
  if (c.finetuning_type === 'lora') {
    let layers: Map<string, LoraLayer>;
    let settings: LoraSettings;
    let pissaStart: Map<string, { A: Float32Array; B: Float32Array }> | undefined;
    // as LLaMA-Factory: every adapter but the last is merged into the base; the last one is trained further,
    // or merged too when create_new_adapter asks for a fresh adapter on top
    const adapters = c.adapter_name_or_path ?? [];
    const merged = c.create_new_adapter ? adapters : adapters.slice(0, -1);
    for (const dir of merged) mergeLora(model, loadPeftAdapter(model, dir, c.model_name_or_path));
    if (adapters.length && !c.create_new_adapter) {
      const dir = adapters[adapters.length - 1];
      layers = loadPeftAdapter(model, dir, c.model_name_or_path);
      settings = settingsFromConfig(readAdapterConfig(dir));
      for (const l of layers.values()) {
        for (const t of [l.A, l.B, l.magnitude]) if (t) t.requiresGrad = true;
      }
    } else {
      settings = {
        r: c.lora_rank,
        alpha: c.lora_alpha ?? 2 * c.lora_rank,
        dropout: c.lora_dropout,
        targetModules: loraTargets(model, c),
        useRslora: c.use_rslora,
        useDora: c.use_dora,
        ...(c.pissa_init ? { initLoraWeights: pissaInitName(c.pissa_iter) } : {}),
      };
      layers = attachLora(model, settings, new Rng(c.seed));
      if (c.pissa_init) {
        initPissa(model, layers, c.pissa_iter === -1 ? null : c.pissa_iter);
        if (c.pissa_convert) pissaStart = snapshotLayers(layers);
      }
    }
    const trainable = [...layers].flatMap(
      ([name, l]) =>
        [
          [`${name}.lora_A.weight`, l.A],
          [`${name}.lora_B.weight`, l.B],
          ...(l.magnitude ? [[`${name}.lora_magnitude_vector`, l.magnitude]] : []),
        ] as [string, Tensor<'f32'>][],
    );
    const extraModules = c.additional_target ?? settings.modulesToSave ?? [];
    if (extraModules.length) {
      const params = savedModuleParameters(model, extraModules);
      if (!params.length) {
        throw new LmfError('bad_value', `additional_target ${extraModules.join(',')} names no module of this model`, {
          key: 'additional_target',
          hint: 'e.g. embed_tokens, lm_head, norm',
        });
      }
      for (const [param, t] of params) {
        if (t.dtype !== 'f32') throw new LmfError('internal', `${param} must be loaded in f32 to train`);
        t.requiresGrad = true;
        trainable.push([param, t as Tensor<'f32'>]);
      }
      settings = { ...settings, modulesToSave: extraModules };
    }
    const ratio = c.loraplus_lr_ratio;
    const groups = groupsOf(trainable, c, (name) =>
      ratio && name.endsWith('lora_B.weight') ? c.learning_rate * ratio : c.learning_rate,
    );
    return { groups, trainable, lora: { layers, settings, pissaStart } };
  }
  let chosen = all;
  if (c.finetuning_type === 'freeze') {
    // LLaMA Pro trains only the blocks `lmf expand` added: one every num_layers / freeze_trainable_layers
    const layers = c.use_llama_pro
      ? new Set(expandedLayerIds(model.layers.length, c.freeze_trainable_layers))
      : freezeLayers(model.layers.length, c.freeze_trainable_layers);
    const modules = c.freeze_trainable_modules;
    const extra = c.freeze_extra_modules ?? [];
    chosen = all.filter(([name]) => {
      const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
      if (m)
        return (
          layers.has(Number(m[1])) &&
          (modules.includes('all') || modules.some((mod) => m[2].startsWith(`${mod}.`) || m[2].includes(`.${mod}.`)))
        );
      return extra.some((e) => name.includes(e));
    });
    if (!chosen.length)
      throw new LmfError('bad_value', 'freeze settings leave no parameter to train', {
        key: 'freeze_trainable_modules',
        hint: 'use all, or names like mlp, self_attn',
      });
  }
  const trainable = chosen as [string, Tensor<'f32'>][];
  for (const [, p] of trainable) {
    if (p.dtype !== 'f32') throw new LmfError('internal', 'trainable parameters must be f32');
    p.requiresGrad = true;
  }
  return { groups: groupsOf(trainable, c, () => c.learning_rate), trainable, lora: null };
}
