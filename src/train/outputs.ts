/** What a finished run leaves in output_dir: the adapter or model, tokenizer files, and result summaries. */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { savedModuleParameters } from '../adapters/lora.js';
import { savePeftAdapter } from '../adapters/peft.js';
import { pissaToLora } from '../adapters/pissa.js';
import type { TrainConfig } from '../config/schema.js';
import { writeTextAtomic } from '../io/atomic.js';
import type { CausalLM } from '../models/registry.js';
import { saveModelFolder } from '../models/save.js';
import type { MethodSetup } from './methods.js';

const tokenizerFiles = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'generation_config.json',
  'chat_template.jinja',
];

/** The trained weights: a PEFT adapter for LoRA, a Hugging Face model folder otherwise. */
export function saveTrainedModel(dir: string, model: CausalLM, setup: MethodSetup, c: TrainConfig): void {
  if (setup.lora) {
    const s = setup.lora.settings;
    savePeftAdapter(
      dir,
      setup.lora.layers,
      s,
      c.model_name_or_path,
      savedModuleParameters(model, s.modulesToSave ?? []),
    );
  } else saveModelFolder(model, dir, { dtype: c.bf16 ? 'BF16' : 'F32' });
  for (const f of tokenizerFiles) {
    const src = path.join(c.model_name_or_path, f);
    if (existsSync(src)) copyFileSync(src, path.join(dir, f));
  }
}

/**
 * LLaMA-Factory's pissa_convert folders: pissa_init/ (the starting adapter, written as the run starts) and
 * pissa_converted/ (at the end: the trained adapter as a plain LoRA of twice the rank for the original model,
 * which any LoRA loader takes without the PiSSA residual).
 */
export function savePissaFolder(which: 'pissa_init' | 'pissa_converted', setup: MethodSetup, c: TrainConfig): void {
  const lora = setup.lora;
  if (!lora?.pissaStart) return;
  const dir = path.join(c.output_dir, which);
  mkdirSync(dir, { recursive: true });
  if (which === 'pissa_init') {
    savePeftAdapter(dir, lora.layers, { ...lora.settings, initLoraWeights: true }, c.model_name_or_path);
    return;
  }
  const converted = pissaToLora(lora.layers, lora.pissaStart, lora.settings);
  try {
    savePeftAdapter(dir, converted.layers, converted.settings, c.model_name_or_path);
  } finally {
    for (const l of converted.layers.values()) l.dispose();
  }
}

export function writeJson(dir: string, name: string, value: unknown): void {
  writeTextAtomic(path.join(dir, name), `${JSON.stringify(value, null, 2)}\n`);
}
