/** What a finished run leaves in output_dir: the adapter or model, tokenizer files, and result summaries. */
import { copyFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { savedModuleParameters } from '../adapters/lora.js';
import { savePeftAdapter } from '../adapters/peft.js';
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

export function writeJson(dir: string, name: string, value: unknown): void {
  writeTextAtomic(path.join(dir, name), `${JSON.stringify(value, null, 2)}\n`);
}
