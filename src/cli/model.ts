/** `lmf init` (a fresh model folder with a real tokenizer) and `lmf generate` (greedy answers to prompts). */
import { Command } from 'commander';
import { positiveInt } from './parse.js';
import { copyFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { LmfError } from '../errors.js';

export function initCommand(): Command {
  return new Command('init')
    .description(
      'write a freshly initialised LLaMA-shaped model folder around a real tokenizer (for pre-training from scratch)',
    )
    .requiredOption('--tokenizer <dir>', 'folder with tokenizer.json and tokenizer_config.json')
    .requiredOption('--out <dir>', 'model folder to write')
    .option('--hidden <n>', 'hidden size', positiveInt, 192)
    .option('--layers <n>', 'decoder layers', positiveInt, 4)
    .option('--heads <n>', 'attention heads', positiveInt, 6)
    .option('--kv-heads <n>', 'key/value heads', positiveInt, 2)
    .option('--intermediate <n>', 'MLP size', positiveInt, 512)
    .option(
      '--vocab <n>',
      "vocabulary rows (default: the tokenizer's; more pads it, as checkpoints round it up)",
      positiveInt,
    )
    .option('--seed <n>', 'initialisation seed', (v) => Number(v), 0)
    .action(
      async (o: {
        tokenizer: string;
        out: string;
        hidden: number;
        layers: number;
        heads: number;
        kvHeads: number;
        intermediate: number;
        vocab?: number;
        seed: number;
      }) => {
        const [{ HfTokenizer }, { parseModelConfig }, { initModel }, { saveModelFolder }, { ensureDir }] =
          await Promise.all([
            import('../data/tokenizer.js'),
            import('../models/config.js'),
            import('../models/init.js'),
            import('../models/save.js'),
            import('../io/dirs.js'),
          ]);
        const tok = HfTokenizer.fromDir(o.tokenizer);
        if (o.vocab !== undefined && o.vocab < tok.vocabSize)
          throw new LmfError(
            'bad_option',
            `--vocab ${o.vocab} is smaller than the tokenizer's ${tok.vocabSize} tokens`,
          );
        if (existsSync(path.join(o.out, 'config.json')))
          throw new LmfError('output_exists', 'a model already exists there', { file: o.out });
        const raw = {
          architectures: ['LlamaForCausalLM'],
          model_type: 'llama',
          vocab_size: o.vocab ?? tok.vocabSize,
          hidden_size: o.hidden,
          intermediate_size: o.intermediate,
          num_hidden_layers: o.layers,
          num_attention_heads: o.heads,
          num_key_value_heads: o.kvHeads,
          rms_norm_eps: 1e-5,
          rope_theta: 10000,
          tie_word_embeddings: true,
          max_position_embeddings: 2048,
          bos_token_id: tok.bosId,
          eos_token_id: tok.eosId,
          pad_token_id: null,
          hidden_act: 'silu',
        };
        const model = initModel(parseModelConfig(raw, o.out), 'f32', o.seed);
        ensureDir(o.out);
        saveModelFolder(model, o.out, { dtype: 'F32' });
        for (const f of ['tokenizer.json', 'tokenizer_config.json'])
          copyFileSync(path.join(o.tokenizer, f), path.join(o.out, f));
        const params = model.namedParameters().reduce((a, [, p]) => a + p.size, 0);
        process.stdout.write(`wrote ${o.out}: ${params.toLocaleString()} parameters, vocabulary ${tok.vocabSize}\n`);
        model.dispose();
      },
    );
}

export function scoreCommand(): Command {
  return new Command('score')
    .description(
      'scores of answers to a prompt under a reward model trained with stage: rm; prints one JSON line per answer',
    )
    .requiredOption('--model <dir>', 'base model folder (or the rm output folder of a full or freeze run)')
    .option('--adapter <dirs>', 'LoRA adapter folder(s), comma-separated (the rm output folder of a LoRA run)')
    .option(
      '--value-head <dir>',
      'folder with value_head.safetensors (default: the last adapter, else the model folder)',
    )
    .option(
      '--template <name>',
      "chat template the reward model was trained with (default: the tokenizer's chat_template)",
    )
    .option('--system <text>', 'system prompt')
    .requiredOption('--prompt <text>', 'the user message the answers reply to')
    .argument('<answers...>', 'answers to score')
    .action(
      async (
        answers: string[],
        o: { model: string; adapter?: string; valueHead?: string; template?: string; system?: string; prompt: string },
      ) => {
        const [{ ValueHead }, { loadInference }, { scoreAnswers }] = await Promise.all([
          import('../models/value-head.js'),
          import('../infer/load.js'),
          import('../infer/score.js'),
        ]);
        const adapters = adapterList(o.adapter);
        const head = ValueHead.load(o.valueHead ?? adapters[adapters.length - 1] ?? o.model);
        const m = loadInference({ model: o.model, adapters, template: o.template });
        try {
          const scores = scoreAnswers(m, head, [{ role: 'user', content: o.prompt }], answers, o.system);
          answers.forEach((answer, i) => process.stdout.write(`${JSON.stringify({ answer, score: scores[i] })}\n`));
        } finally {
          m.dispose();
          head.dispose();
        }
      },
    );
}

export function generateCommand(): Command {
  return new Command('generate')
    .description('greedy answers of a model (and adapters) to one or more prompts, generated as one batch')
    .requiredOption('--model <dir>', 'model folder')
    .option('--adapter <dirs>', 'PEFT LoRA adapter folder(s), comma-separated')
    .option('--template <name>', "chat template (default: the tokenizer's chat_template)")
    .option('--system <text>', 'system prompt')
    .option('--max-new-tokens <n>', 'longest answer', positiveInt, 48)
    .argument('<prompts...>', 'user messages, one answer each')
    .action(
      async (
        prompts: string[],
        o: { model: string; adapter?: string; template?: string; system?: string; maxNewTokens: number },
      ) => {
        const [{ generate }, { chatRequest, loadInference }, { mergeSettings }] = await Promise.all([
          import('../infer/generate.js'),
          import('../infer/load.js'),
          import('../infer/settings.js'),
        ]);
        const m = loadInference({ model: o.model, adapters: adapterList(o.adapter), template: o.template });
        try {
          const settings = mergeSettings({ doSample: false, repetitionPenalty: 1, maxNewTokens: o.maxNewTokens });
          const requests = prompts.map((p) =>
            chatRequest(m, [{ role: 'user', content: p }], { system: o.system, settings }),
          );
          generate(m.model, m.tokenizer, requests).forEach((c, i) =>
            process.stdout.write(`> ${prompts[i]}\n${c.text.trim()}\n\n`),
          );
        } finally {
          m.dispose();
        }
      },
    );
}

function adapterList(value: string | undefined): string[] {
  return (
    value
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean) ?? []
  );
}
