/**
 * `lmf`: the command line. Each subcommand parses its options here and calls the layer that does the work.
 * The layers (and the native addon) are imported by the action that needs them, so that `lmf --help` and
 * `lmf --version` start at once and each command loads only its own modules.
 */
import { Command, Option } from 'commander';
import { nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber } from './parse.js';
import { lmfVersion as version } from '../version.js';
import { joinedWorld } from '../distributed/world.js';
import { fromSystemError, LmfError } from '../errors.js';
import { availableParallelism } from 'node:os';
import type { BenchMode } from '../bench/train-step.js';
import type { VerifyOptions } from '../verify/report.js';
import { presets } from '../models/presets.js';
import { apiCommand } from './api.js';
import { webuiCommand } from './webui.js';
import { chatCommand } from './chat.js';
import { dataCommand } from './data.js';
import { generateCommand, initCommand, scoreCommand } from './model.js';
import { completionCommand } from './completion.js';
import { loadConfigFrom, settingsHelp } from './config.js';
import { expandCommand } from './expand.js';

/** --quantization-bit 4 (NF4 with double quantization) or 8 (LLM.int8), for the commands that quantize a base. */
function quantizationBitOption(what: string): Option {
  return new Option('--quantization-bit <bits>', `${what} (4: NF4 with double quantization, 8: int8)`)
    .choices(['4', '8'])
    .argParser((v) => Number(v) as 4 | 8);
}

export function buildProgram(): Command {
  const program = new Command('lmf')
    .description('LMFactory: fine-tune large language models on Node.js')
    .version(version)
    .showHelpAfterError()
    .showSuggestionAfterError();

  program
    .command('verify')
    .description(
      'check a model folder (and adapter) against a golden dump from the PyTorch reference (logits, loss and gradients; five training steps; DPO); prints a JSON report',
    )
    .requiredOption('--model <dir>', 'Hugging Face model folder')
    .requiredOption(
      '--golden <file>',
      'golden safetensors file: a batch (input_ids, labels, logits, loss, grad.<name>), golden_train or golden_dpo',
    )
    .option('--adapter <dir>', 'PEFT LoRA adapter folder')
    .option('--atol <x>', 'absolute tolerance for logits and loss', positiveNumber, 1e-4)
    .option('--grad-rtol <x>', "gradient tolerance relative to each tensor's largest value", positiveNumber, 1e-3)
    .addOption(quantizationBitOption('QLoRA: quantize the base'))
    .action(async (o: VerifyOptions) => {
      const { verifyGolden } = await import('../verify/golden.js');
      const report = verifyGolden(o);
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      const bad = report.tensors.filter((t) => !t.ok);
      process.stderr.write(
        report.ok
          ? `verify: ${report.tensors.length} tensors within tolerance\n`
          : `verify: ${bad.length} of ${report.tensors.length} tensors out of tolerance: ${bad.map((t) => t.name).join(', ')}\n`,
      );
      process.exitCode = report.ok ? 0 : 1;
    });

  const bench = program
    .command('bench')
    .description(
      'speed of training steps, forward passes or generation (prefill and decode) on a preset shape or a model folder; prints one JSON line',
    )
    .option('--model <name|dir>', `preset (${Object.keys(presets).join(', ')}) or a model folder`, 'smollm2-135m')
    .addOption(
      new Option('--mode <mode>', 'what a step does (generate: prefill + decode with KV caches)')
        .choices(['lora', 'full', 'infer', 'generate'])
        .default('lora'),
    )
    .addOption(new Option('--dtype <dtype>', 'matmul precision').choices(['f32', 'bf16']).default('bf16'))
    .option('--seq <n>', 'sequence length', positiveInt, 512)
    .option('--batch <n>', 'batch size', positiveInt, 1)
    .option('--steps <n>', 'timed steps', positiveInt, 5)
    .option('--warmup <n>', 'untimed steps first', nonNegativeInt, 2)
    .option('--lora-rank <n>', 'LoRA rank (alpha = 2 x rank, all projections)', positiveInt, 8)
    .option('--gradient-checkpointing', 'lora/full: recompute each layer in the backward pass (less memory)', false)
    .addOption(quantizationBitOption('lora and generate: the base quantized (QLoRA)'))
    .option(
      '--new-tokens <n>',
      'generate mode: tokens decoded per sequence (the prompt is --seq tokens)',
      positiveInt,
      128,
    )
    .option('--temperature <x>', 'generate mode: sample at this temperature (0: greedy)', nonNegativeNumber, 0)
    .option('--top-p <x>', 'generate mode: top_p when sampling', positiveNumber, 1)
    .option('--top-k <n>', 'generate mode: top_k when sampling (0: none)', nonNegativeInt, 0)
    .option('--nproc <n>', 'lora/full: data-parallel ranks on this machine, started through mpirun', positiveInt)
    .option('--zero', 'with --nproc or under mpirun: shard the optimiser (ZeRO-1)', false)
    .option('--contend', 'measure alone, then beside a process that keeps one CPU busy; report the slowdown', false)
    .action(
      async (o: {
        nproc?: number;
        zero: boolean;
        contend: boolean;
        model: string;
        mode: BenchMode | 'generate';
        dtype: 'f32' | 'bf16';
        seq: number;
        batch: number;
        steps: number;
        warmup: number;
        loraRank: number;
        gradientCheckpointing: boolean;
        quantizationBit?: 4 | 8;
        newTokens: number;
        temperature: number;
        topP: number;
        topK: number;
      }) => {
        if (o.nproc && o.nproc > 1) {
          const { launchRanks, withoutNproc } = await import('./launch.js');
          process.exitCode = await launchRanks(o.nproc, withoutNproc(process.argv.slice(2)));
          return;
        }
        if (o.contend && (o.nproc || (await import('../distributed/world.js')).launchedWorldSize() > 1))
          throw new LmfError('bad_argument', '--contend measures one process', {
            hint: 'leave out --nproc (or mpirun)',
          });
        const mode = o.mode;
        const result =
          mode === 'generate'
            ? await (async () => {
                const { runGenerateBench } = await import('../bench/generate.js');
                if (!o.contend) return runGenerateBench(o);
                const { contended } = await import('../bench/contend.js');
                return contended(() => runGenerateBench(o), ['prefill_tokens_per_s', 'decode_tokens_per_s']);
              })()
            : await (async () => {
                const { runBench } = await import('../bench/train-step.js');
                if (!o.contend) return runBench({ ...o, mode });
                const { contended } = await import('../bench/contend.js');
                return contended(() => runBench({ ...o, mode })!, ['tokens_per_s']);
              })();
        if (result) process.stdout.write(`${JSON.stringify(result)}\n`);
      },
    );
  bench
    .command('peak')
    .description(
      "this machine's arithmetic peak on the kernel path: f32 FMAs and bf16 dot products on every thread (GFLOP/s); prints one JSON line",
    )
    .action(async () => {
      const { runPeakBench } = await import('../bench/peak.js');
      process.stdout.write(`${JSON.stringify(runPeakBench())}\n`);
    });
  bench
    .command('matmuls')
    .description(
      "oneDNN's speed on each product of a training step at the shapes of lmf bench's --model, --dtype, --seq and --batch (forward, input and weight gradients of every projection shape, the LM head's chunk), against this machine's peak; prints one JSON line",
    )
    .option('--reps <n>', 'timed calls per product (the median is reported)', positiveInt, 10)
    .action(async (_: unknown, command: Command) => {
      // --model, --dtype, --seq and --batch are lmf bench's own options, parsed before or after `matmuls`
      const o = command.optsWithGlobals<{
        model: string;
        dtype: 'f32' | 'bf16';
        seq: number;
        batch: number;
        reps: number;
      }>();
      const { runMatmulBench } = await import('../bench/matmuls.js');
      process.stdout.write(`${JSON.stringify(runMatmulBench(o))}\n`);
    });
  bench
    .command('data')
    .description('templating + tokenising speed for alpaca-style examples of about 200 tokens; prints one JSON line')
    .requiredOption('--tokenizer <dir>', 'folder with tokenizer.json and tokenizer_config.json')
    .option('--template <name>', 'chat template', 'qwen')
    .option('--examples <n>', 'examples to process', positiveInt, 20000)
    .option('--workers <n>', 'worker threads', positiveInt, availableParallelism())
    .action(async (o: { tokenizer: string; template: string; examples: number; workers: number }) => {
      const { runDataBench } = await import('../bench/data.js');
      process.stdout.write(`${JSON.stringify(await runDataBench(o))}\n`);
    });

  program
    .command('train')
    .description(
      'train a model as the YAML says (stage pt, sft, rm, dpo or kto; full, freeze or lora); with do_predict, answer eval_dataset and score it',
    )
    .argument('[settings...]', settingsHelp("training YAML with LLaMA-Factory's keys"))
    .option('--nproc <n>', 'data-parallel ranks on this machine, started through mpirun', positiveInt)
    .allowUnknownOption()
    .action(async (args: string[], o: { nproc?: number }) => {
      if (o.nproc && o.nproc > 1) {
        const { launchRanks, withoutNproc } = await import('./launch.js');
        process.exitCode = await launchRanks(o.nproc, withoutNproc(process.argv.slice(2)));
        return;
      }
      const c = await loadConfigFrom(args);
      if (c.do_train ?? !c.do_predict) await (await import('../train/trainer.js')).train(c);
      // in a data-parallel job, rank 0 alone predicts (and writes the predictions)
      if (c.do_predict && (joinedWorld()?.isMain ?? Number(process.env.OMPI_COMM_WORLD_RANK ?? 0) === 0)) {
        const { predict } = await import('../eval/predict.js');
        const results = await predict(c, (l) => process.stderr.write(`${l}\n`));
        process.stderr.write(`predict: ${JSON.stringify(results)}\n`);
      }
    });

  program
    .command('eval')
    .description(
      'multiple-choice benchmark (MMLU, CMMLU, C-Eval layout) from local files: accuracy per subject, category and on average',
    )
    .argument(
      '[settings...]',
      settingsHelp(
        'YAML with model_name_or_path, adapter_name_or_path, template, task, task_dir, n_shot, lang, save_dir',
      ),
    )
    .allowUnknownOption()
    .action(async (args: string[]) => {
      const [{ runChoiceEval }, { scoreLines }] = await Promise.all([
        import('../eval/run.js'),
        import('../eval/choice.js'),
      ]);
      const report = runChoiceEval(await loadConfigFrom(args), (l) => process.stderr.write(`${l}\n`));
      process.stdout.write(`${scoreLines(report.scores)}\n`);
    });

  program
    .command('export')
    .description(
      'merge adapters into the base model and write a Hugging Face folder (and GGUF with export_gguf) to export_dir',
    )
    .argument(
      '[settings...]',
      settingsHelp(
        'YAML with model_name_or_path, adapter_name_or_path, export_dir, export_size, infer_dtype, export_gguf',
      ),
    )
    .allowUnknownOption()
    .action(async (args: string[]) => {
      const { exportModel } = await import('../export/export.js');
      const result = exportModel(await loadConfigFrom(args), (l) => process.stderr.write(`${l}\n`));
      process.stdout.write(`exported to ${result.dir}: ${result.files.join(', ')}\n`);
    });

  program.addCommand(dataCommand());
  program.addCommand(initCommand());
  program.addCommand(generateCommand());
  program.addCommand(scoreCommand());
  program.addCommand(chatCommand());
  program.addCommand(apiCommand());
  program.addCommand(webuiCommand());
  program.addCommand(expandCommand());
  program.addCommand(completionCommand(() => program));

  program
    .command('env')
    .description('versions, threads and CPU features the engine runs with')
    .action(async () => {
      const { native } = await import('../native.js');
      process.stdout.write(
        `${JSON.stringify({ lmfactory: version, node: process.version, ...native.info() }, null, 2)}\n`,
      );
    });

  return program;
}

/** Runs the CLI; errors a user can fix are printed in two lines, never as a stack trace. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
    joinedWorld()?.finalize();
  } catch (err) {
    const known = err instanceof LmfError ? err : fromSystemError(err);
    const world = joinedWorld();
    if (world && world.size > 1) process.stderr.write(`[rank ${world.rank}] `);
    if (known) {
      process.stderr.write(`${known.format()}\n`);
    } else {
      const e = err as Error;
      process.stderr.write(`error: ${e.message}\n`);
      if (process.env.LMF_DEBUG) process.stderr.write(`${e.stack}\n`);
      else
        process.stderr.write(
          '  hint: this looks like a bug in LMFactory; rerun with LMF_DEBUG=1 for details and report it\n',
        );
    }
    process.exitCode = 1;
    // one rank's error ends the whole job: mpirun stops every rank when one exits non-zero (the others would
    // wait for it forever); exit now, with collectives of this rank possibly still in flight
    if (world && world.size > 1) process.exit(1);
  }
}
