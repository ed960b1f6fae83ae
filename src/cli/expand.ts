/**
 * `lmf expand`: LLaMA Pro's block expansion of a model folder (as LLaMA-Factory's llama_pro.py script): the
 * expanded folder computes what the original did, and training with use_llama_pro: true and
 * freeze_trainable_layers: N updates only the N added blocks.
 */
import { Command } from 'commander';
import { copyFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { positiveInt } from './parse.js';

/** Files of a model folder besides its weights and config that the expanded folder keeps. */
const companions = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'generation_config.json',
  'chat_template.jinja',
];

export function expandCommand(): Command {
  return new Command('expand')
    .description('LLaMA Pro: add N zero-output copies of blocks to a model folder (train them with use_llama_pro)')
    .requiredOption('--model <dir>', 'Hugging Face model folder')
    .requiredOption('--out <dir>', 'folder for the expanded model')
    .requiredOption('--num-expand <n>', 'blocks to add (must divide the number of layers)', positiveInt)
    .action(async (o: { model: string; out: string; numExpand: number }) => {
      const [{ loadModel }, { expandBlocks }, { saveModelFolder }, { ensureDir, refuseOverlap }] = await Promise.all([
        import('../models/registry.js'),
        import('../models/expand.js'),
        import('../models/save.js'),
        import('../io/dirs.js'),
      ]);
      refuseOverlap({ key: 'out', path: o.out }, [{ key: 'model', path: o.model }]);
      const { model } = loadModel(o.model, { dtype: 'f32' });
      const expanded = expandBlocks(model, o.numExpand);
      model.dispose();
      ensureDir(o.out);
      const stored = model.config.raw.torch_dtype === 'bfloat16' ? 'BF16' : 'F32';
      saveModelFolder(expanded, o.out, { dtype: stored });
      for (const f of companions)
        if (existsSync(path.join(o.model, f))) copyFileSync(path.join(o.model, f), path.join(o.out, f));
      process.stdout.write(
        `expanded ${model.config.numLayers} → ${expanded.config.numLayers} layers into ${o.out}; ` +
          `train with finetuning_type: freeze (or lora), use_llama_pro: true, freeze_trainable_layers: ${o.numExpand}\n`,
      );
      expanded.dispose();
    });
}
