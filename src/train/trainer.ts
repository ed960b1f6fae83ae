/**
 * `lmf train`: the loop, in the order it runs. Data -> model -> method -> optimiser; then for each optimiser
 * step: gradient_accumulation_steps micro-batches (the loss normalised over every target token of the
 * accumulated batch), clip, AdamW with the scheduled rate, log, evaluate, checkpoint. A NaN loss stops the
 * run naming the step and the last good checkpoint; SIGINT or SIGTERM saves a checkpoint and exits cleanly
 * (a second one exits at once).
 *
 * Launched as several ranks (mpirun, srun, `lmf train --nproc`), each rank runs its slice of every step's
 * micro-batches, the gradients are summed over the ranks (gradient-sync.ts; ZeRO-1 shards the optimiser,
 * zero.ts), and rank 0 alone writes the log, checkpoints and outputs.
 */
import path from 'node:path';
import type { TrainConfig } from '../config/schema.js';
import { prepareData } from '../data/pipeline.js';
import { checkTokenizerFits } from '../data/tokenizer.js';
import { readModelConfig } from '../models/config.js';
import { LmfError } from '../errors.js';
import { native } from '../native.js';
import { writeTextAtomic } from '../io/atomic.js';
import { world as joinWorld, type World } from '../distributed/world.js';
import { adaptThreads } from '../threads.js';
import { AdamW, type Optimizer } from './adamw.js';
import { checkpointDirs, loadCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.js';
import { checkSameRun, fromMain, ownsMicro, shareThreads, sumOverRanks, zeroStage } from './data-parallel.js';
import { reportDroppedRows } from './data-report.js';
import { GradientSync } from './gradient-sync.js';
import { loadTrainedModel } from './load-model.js';
import { warnTemplateMismatch, writeTrainManifest } from './manifest.js';
import { prepareOutputDir, runIdentity } from './output-dir.js';
import { describeEstimate, estimateStepMemory } from './memory-estimate.js';
import { attachBf16Copies, setupMethod, type MethodSetup } from './methods.js';
import { makeObjective } from './stages/index.js';
import { savePissaFolder, saveTrainedModel, writeJson } from './outputs.js';
import { plotLosses } from './plot.js';
import { lrFactor, warmupSteps } from './scheduler.js';
import { appendLog, duration, progressLine, type LogRecord } from './trainer-log.js';
import { maxOf } from '../util/arrays.js';
import { ShardedAdamW } from './zero.js';

export interface TrainOptions {
  /** where progress lines go (stderr by default) */
  print?: (line: string) => void;
}

export async function train(c: TrainConfig, o: TrainOptions = {}): Promise<{ state: TrainerState; outputDir: string }> {
  const world = joinWorld();
  const own = o.print ?? ((l: string) => process.stderr.write(`${l}\n`));
  // rank 0 speaks for the job (others only for what is theirs alone, before the ranks meet)
  const print = world.isMain ? own : () => {};
  shareThreads(world);
  // the deepspeed JSON is read once, and only where there are ranks to shard over
  const zero = world.size > 1 ? zeroStage(c) : 0;
  if (world.size > 1)
    print(`data parallel: ${world.size} ranks × ${native.threads()} threads${zero ? ', ZeRO-1' : ''}`);
  else if (c.deepspeed)
    print('notice: deepspeed has no effect in one process (ZeRO shards the optimiser over ranks: mpirun or --nproc)');
  // rank 0 decides what to resume (and owns output_dir); the others are told
  const prepared = world.isMain ? prepareOutputDir(c, print) : null;
  const shared = JSON.parse(
    fromMain(world, JSON.stringify({ resumeDir: prepared?.resumeDir ?? null, runId: prepared?.runId ?? '' })),
  ) as { resumeDir: string | null; runId: string };
  try {
    return await trainIn(c, print, shared.resumeDir, shared.runId, world, zero);
  } finally {
    prepared?.release();
  }
}

async function trainIn(
  c: TrainConfig,
  print: (line: string) => void,
  resumeDir: string | null,
  runId: string,
  world: World,
  zero: 0 | 1,
): Promise<{ state: TrainerState; outputDir: string }> {
  // rank 0 tokenises first (and fills the cache or tokenized_path); the others then read what it wrote
  if (!world.isMain) world.barrier();
  const data = await prepareData(c);
  if (world.isMain) world.barrier();
  checkSameRun(world, c, data);
  reportDroppedRows(data, c, print);
  warnTemplateMismatch(c, data, print);
  const { isa, bf16Matmul } = native.info();
  if (c.bf16 && bf16Matmul === 'widened') {
    print(
      `notice: bf16 on kernel path ${isa}: this CPU has no bf16 dot products, so matmul operands are widened to f32; bf16 runs at about f32 speed`,
    );
  }
  const padId = data.tokenizer.padId ?? 0;
  checkTokenizerFits(data.tokenizer, readModelConfig(c.model_name_or_path).vocabSize, c.model_name_or_path);
  const model = loadTrainedModel(c);
  const setup: MethodSetup = setupMethod(model, c);
  if (world.isMain) savePissaFolder('pissa_init', setup, c);
  // one optimiser step takes gradient_accumulation_steps micro-batches per rank
  const microPerStep = c.gradient_accumulation_steps * world.size;
  const objective = makeObjective(model, data.train, c, padId, setup, microPerStep);
  // rank 0 evaluates alone (the others wait at the next step's collectives)
  const evaluator = data.eval && world.isMain ? (objective.evaluator?.(data.eval) ?? null) : null;
  const evaluate = (): Record<string, number> => evaluator?.() ?? {};
  // the log keeps LLaMA-Factory's per-step fields; perplexity is a final result only
  const evalFields = () =>
    Object.fromEntries(
      Object.entries(evaluate())
        .filter(([k]) => k !== 'perplexity')
        .map(([k, v]) => [k, round(v)]),
    );
  for (const [name, p] of objective.parameters ?? []) {
    setup.trainable.push([name, p]);
    setup.groups.push({ params: [p], lr: c.learning_rate, weightDecay: p.shape.length >= 2 ? c.weight_decay : 0 });
  }
  const stepsPerEpoch = objective.stepsPerEpoch;
  const total = c.max_steps > 0 ? c.max_steps : Math.ceil(c.num_train_epochs * stepsPerEpoch);
  const warmup = warmupSteps(c, total);

  // LoRA's and DoRA's first values come from native kernels, whose last bits may differ between the CPUs of a
  // mixed cluster: every rank starts from rank 0's (full and freeze read theirs from the same files)
  if (world.size > 1 && c.finetuning_type === 'lora')
    world.wait(
      world.broadcast(
        setup.trainable.map(([, p]) => p.data),
        0,
      ),
    );
  if (c.bf16) attachBf16Copies(setup.trainable);
  const adamSettings = { beta1: c.adam_beta1, beta2: c.adam_beta2, eps: c.adam_epsilon };
  const sync =
    world.size > 1
      ? new GradientSync(
          world,
          setup.groups.flatMap((g) => g.params),
          !zero,
        )
      : null;
  const opt: Optimizer =
    sync && zero
      ? new ShardedAdamW(world, setup.groups, adamSettings, sync.buckets)
      : new AdamW(setup.groups, adamSettings);
  let state: TrainerState = {
    global_step: 0,
    epoch_step: 0,
    epoch: 0,
    total_steps: total,
    log_history: [],
    best_metric: null,
  };
  if (resumeDir) {
    state = loadCheckpoint(resumeDir, setup.trainable, opt);
    state.total_steps = total;
    // the log continues from the checkpoint: lines a killed run wrote after it are dropped
    if (world.isMain)
      writeTextAtomic(
        path.join(c.output_dir, 'trainer_log.jsonl'),
        state.log_history.map((r) => `${JSON.stringify(r)}\n`).join(''),
      );
    for (const [, p] of setup.trainable) if (p.shadow) native.toBf16(p.data, p.shadow.data, p.size);
    print(`resumed from ${resumeDir} at step ${state.global_step}`);
    const before = state.lmf_world_size ?? 1;
    if (before !== world.size)
      print(
        `notice: the checkpoint was written by ${before} rank${before > 1 ? 's' : ''} and this run has ${world.size}: the global batch, and so the data of each step from here, differ from the interrupted run's`,
      );
  }
  state.lmf_run = runIdentity(c, runId);
  state.lmf_world_size = world.size;
  if (world.isMain) writeTrainManifest(c, data);
  const params = setup.trainable.reduce((a, [, p]) => a + p.size, 0);
  print(
    `training ${c.stage}/${c.finetuning_type}: ${data.stats.examples} examples, ${total} steps, ${params.toLocaleString()} trainable parameters`,
  );
  const rowsPerBatch = c.per_device_train_batch_size * objective.rowsPerUnit;
  print(describeEstimate(estimateStepMemory(model, setup, rowsPerBatch * maxOf(data.stats.lengths))));

  // schedulers and Kubernetes send SIGTERM before killing: both save a checkpoint after the step in flight. The
  // handlers then go, so that a later signal has its default effect and ends the process at once, even in the
  // middle of a step or of writing the checkpoint (JavaScript handlers only run between them); a second signal
  // that arrived during the same step is dropped with the handler and does not cost the checkpoint. SIGUSR2 does
  // the same: mpirun forwards it to every rank (`lmf train --nproc` turns Ctrl-C into it).
  const stopSignals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGUSR2'];
  let signalled: NodeJS.Signals | null = null;
  // alone, a signal stops the run after the step in flight; in a world, after the step in which the ranks learn
  // of it (each step's figures carry it), so that every rank stops after the same step
  let stopAgreed = false;
  const stopping = () => (world.size === 1 ? signalled !== null : stopAgreed);
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) return;
    signalled = signal;
    for (const s of stopSignals) process.removeListener(s, onSignal);
    print(`${signal}: a checkpoint is saved after this step (send it again to stop at once)`);
  };
  for (const s of stopSignals) process.on(s, onSignal);
  const writeModel = (dir: string) => {
    saveTrainedModel(dir, model, setup, c);
    objective.save?.(dir);
  };
  // every rank takes part (ZeRO-1 gathers the moments to rank 0), rank 0 writes
  const checkpoint = () => {
    const moments = opt.momentsForSave(setup.trainable.map(([, p]) => p));
    try {
      return world.isMain
        ? saveCheckpoint(
            c.output_dir,
            setup.trainable,
            { ...moments, step: opt.step },
            state,
            writeModel,
            c.save_total_limit,
          )
        : '';
    } finally {
      moments.release();
    }
  };
  const log = (record: LogRecord) => {
    if (world.isMain) appendLog(c.output_dir, record);
    state.log_history.push(record);
    print(progressLine(record, world.size));
  };

  const start = performance.now();
  let windowLoss = 0,
    windowSteps = 0,
    windowTokens = 0,
    windowStart = performance.now();
  let windowMetrics: Record<string, number> = {};
  if (c.eval_on_start && evaluator && state.global_step === 0) {
    const record: LogRecord = {
      current_steps: 0,
      total_steps: total,
      epoch: 0,
      percentage: 0,
      elapsed_time: duration(0),
      remaining_time: duration(0),
      ...evalFields(),
    };
    log(record);
  }
  try {
    while (state.global_step < total && !stopping()) {
      const step = state.global_step;
      adaptThreads();
      const owned = objective.step(step, {
        dropoutStep: (k) => step * microPerStep + k,
        noise: (k) =>
          c.neftune_noise_alpha ? { alpha: c.neftune_noise_alpha, seed: (step * 7919 + k + c.seed) >>> 0 } : undefined,
        owns: ownsMicro(world, objective.microInStep(step)),
        beginMicro: (last) => sync?.beginMicro(last),
      });
      sync?.finish();
      const summed = sumOverRanks(world, owned, signalled !== null);
      const result = summed.result;
      stopAgreed = summed.interrupted;
      const stepLoss = result.loss;
      if (!Number.isFinite(stepLoss)) {
        const last = checkpointDirs(c.output_dir).pop();
        throw new LmfError('nan_loss', `the loss became ${stepLoss} at step ${state.global_step + 1}`, {
          hint: `${last ? `the last good checkpoint is ${last.dir}; ` : ''}lower learning_rate or set max_grad_norm`,
        });
      }
      const lr = c.learning_rate * lrFactor(c.lr_scheduler_type, state.global_step, total, warmup, c.learning_rate);
      const norm = opt.update(lr / c.learning_rate, c.max_grad_norm > 0 ? c.max_grad_norm : null);
      opt.zeroGrad();
      state.global_step++;
      state.epoch_step = state.global_step % stepsPerEpoch;
      state.epoch = state.global_step / stepsPerEpoch;
      windowLoss += stepLoss;
      windowSteps++;
      windowTokens += result.tokens;
      for (const [k, v] of Object.entries(result.metrics)) windowMetrics[k] = (windowMetrics[k] ?? 0) + v;
      const last = state.global_step === total;
      if (state.global_step % c.logging_steps === 0 || last) {
        const elapsed = (performance.now() - start) / 1000;
        const rate = (performance.now() - windowStart) / 1000;
        const record: LogRecord = {
          current_steps: state.global_step,
          total_steps: total,
          loss: round(windowLoss / windowSteps),
          lr,
          epoch: round(state.epoch, 4),
          percentage: round((100 * state.global_step) / total, 2),
          elapsed_time: duration(elapsed),
          remaining_time: duration((elapsed / state.global_step) * (total - state.global_step)),
          tokens_per_s: round(windowTokens / rate, 1),
          throughput: round(windowTokens / rate, 1),
          grad_norm: round(norm),
        };
        for (const [k, v] of Object.entries(windowMetrics)) record[k] = round(v / windowSteps);
        if (evaluator && c.eval_steps && state.global_step % c.eval_steps === 0) Object.assign(record, evalFields());
        log(record);
        windowLoss = 0;
        windowSteps = 0;
        windowTokens = 0;
        windowStart = performance.now();
        windowMetrics = {};
      }
      if (state.global_step % c.save_steps === 0 && !last) checkpoint();
      await new Promise(setImmediate); // lets a SIGINT handler run between steps
    }
    if (stopping()) {
      print(`interrupted by ${signalled ?? 'a signal to another rank'}: checkpoint saved to ${checkpoint()}`);
      return { state, outputDir: c.output_dir };
    }
    if (!world.isMain) return { state, outputDir: c.output_dir };
    writeModel(c.output_dir);
    savePissaFolder('pissa_converted', setup, c);
    const runtime = (performance.now() - start) / 1000;
    const losses = state.log_history.filter((r) => r.loss !== undefined);
    const results: Record<string, number> = {
      epoch: round(state.epoch, 4),
      train_loss: round(losses.reduce((a, r) => a + r.loss!, 0) / Math.max(1, losses.length)),
      train_runtime: round(runtime, 2),
      train_steps_per_second: round(total / runtime, 3),
    };
    for (const [k, v] of Object.entries(evaluate())) results[k] = round(v);
    writeJson(c.output_dir, 'trainer_state.json', state);
    writeJson(c.output_dir, 'all_results.json', results);
    if (c.plot_loss) for (const f of plotLosses(c.output_dir, state.log_history)) print(`wrote ${f}`);
    print(`done: ${JSON.stringify(results)}`);
    return { state, outputDir: c.output_dir };
  } finally {
    for (const s of stopSignals) process.removeListener(s, onSignal);
    // after an error in a data-parallel step, collectives may still write into the gradients: the process ends
    // with the error (cli/main.ts), so nothing is freed under them
    if (!sync?.busy) {
      opt.dispose();
      objective.dispose();
      model.dispose();
    }
  }
}

function round(x: number, digits = 6): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
