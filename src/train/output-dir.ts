/**
 * output_dir before the first step: never overlapping an input, cleaned of what killed runs left, cleared of an
 * earlier run's checkpoints with overwrite_output_dir, and the checkpoint to resume from — which must have been
 * made by a run of this model, data and method.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import type { TrainConfig } from '../config/schema.js';
import { LmfError } from '../errors.js';
import { ensureDir, LOCK_FILE, lockFolder, refuseOverlap, removeStaleTemps } from '../io/dirs.js';
import { checkpointDirs, readTrainerState, type RunIdentity } from './checkpoint.js';

/** Keys that make a checkpoint another model, data or method: resuming across a change of one is refused. */
const identityKeys = [
  'model_name_or_path',
  'adapter_name_or_path',
  'stage',
  'finetuning_type',
  'dataset',
  'template',
  'cutoff_len',
  'packing',
  'lora_rank',
  'lora_alpha',
  'lora_target',
  'additional_target',
  'use_dora',
  'use_rslora',
  'freeze_trainable_layers',
  'freeze_trainable_modules',
  'freeze_extra_modules',
  'ref_model',
] as const satisfies readonly (keyof TrainConfig)[];

/** Keys that may change on resume; a change is reported. */
const reportedKeys = [
  'learning_rate',
  'lr_scheduler_type',
  'warmup_ratio',
  'warmup_steps',
  'weight_decay',
  'max_grad_norm',
  'num_train_epochs',
  'max_steps',
  'per_device_train_batch_size',
  'gradient_accumulation_steps',
  'seed',
  'bf16',
  'pref_beta',
  'pref_loss',
] as const satisfies readonly (keyof TrainConfig)[];

function resolvedValue(c: TrainConfig, key: keyof TrainConfig): unknown {
  const v = c[key];
  if (key === 'model_name_or_path' || key === 'ref_model') return typeof v === 'string' ? path.resolve(v) : (v ?? null);
  if (key === 'adapter_name_or_path') return (v as string[] | undefined)?.map((p) => path.resolve(p)) ?? null;
  return v ?? null;
}

/** What a checkpoint records of the run that made it. */
export function runIdentity(c: TrainConfig, runId: string): RunIdentity {
  const config: Record<string, unknown> = {};
  for (const k of [...identityKeys, ...reportedKeys]) config[k] = resolvedValue(c, k);
  return { run_id: runId, config };
}

export function newRunId(): string {
  return randomBytes(8).toString('hex');
}

const show = (v: unknown) => JSON.stringify(v ?? null);

/** Refuses a checkpoint of another model, data or method; lists other changed keys through `print`. */
function checkResumable(dir: string, saved: RunIdentity | undefined, c: TrainConfig, print: (l: string) => void): void {
  if (!saved) {
    print(
      `notice: ${dir} was written by an older LMFactory that did not record its config; resuming without checking it`,
    );
    return;
  }
  const now = runIdentity(c, saved.run_id).config;
  const differ = identityKeys.filter((k) => show(saved.config[k]) !== show(now[k]));
  if (differ.length) {
    throw new LmfError(
      'checkpoint_mismatch',
      `the checkpoint was made with another ${differ.join(', ')}: ${differ.map((k) => `${k} ${show(saved.config[k])} there, ${show(now[k])} here`).join('; ')}`,
      {
        file: dir,
        key: 'resume_from_checkpoint',
        hint: 'resume with the config the checkpoint was made with, or start afresh in another output_dir',
      },
    );
  }
  for (const k of reportedKeys) {
    if (k in saved.config && show(saved.config[k]) !== show(now[k]))
      print(`notice: ${k} changed on resume: ${show(saved.config[k])} -> ${show(now[k])}`);
  }
}

export interface PreparedOutput {
  /** the checkpoint to resume from, or null for a fresh start */
  resumeDir: string | null;
  /** this run's id: it owns the checkpoints it writes, and only those are rotated */
  runId: string;
  /** gives up the folder's lock (also done at exit) */
  release: () => void;
}

export function prepareOutputDir(c: TrainConfig, print: (l: string) => void): PreparedOutput {
  const dir = c.output_dir;
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new LmfError('not_a_directory', 'output_dir is a file', {
      file: dir,
      key: 'output_dir',
      hint: 'choose a folder',
    });
  }
  refuseOverlap({ key: 'output_dir', path: dir }, [
    { key: 'model_name_or_path', path: c.model_name_or_path },
    ...(c.adapter_name_or_path ?? []).map((a) => ({ key: 'adapter_name_or_path', path: a })),
    c.ref_model ? { key: 'ref_model', path: c.ref_model } : null,
  ]);
  const resume = c.resume_from_checkpoint;
  let resumeDir: string | null = null;
  if (typeof resume === 'string') {
    if (!existsSync(path.join(resume, 'trainer_state.json')))
      throw new LmfError('bad_checkpoint', 'not a checkpoint folder (no trainer_state.json)', {
        file: resume,
        key: 'resume_from_checkpoint',
      });
    resumeDir = resume;
  } else if (resume === true) {
    const last = checkpointDirs(dir).pop();
    if (!last)
      throw new LmfError('bad_checkpoint', 'resume_from_checkpoint is true but output_dir holds no checkpoint', {
        file: dir,
        key: 'resume_from_checkpoint',
      });
    resumeDir = last.dir;
  }
  if (resumeDir) {
    const saved = readTrainerState(resumeDir).lmf_run;
    checkResumable(resumeDir, saved, c, print);
    return { resumeDir, runId: saved?.run_id ?? newRunId(), release: claim(dir, print) };
  }
  const occupied = existsSync(dir) && readdirSync(dir).some((n) => n !== LOCK_FILE);
  if (occupied && !c.overwrite_output_dir) {
    throw new LmfError('output_exists', 'output_dir exists and is not empty', {
      file: dir,
      key: 'output_dir',
      hint: 'set overwrite_output_dir: true, resume_from_checkpoint: true, or choose another output_dir',
    });
  }
  const release = claim(dir, print);
  if (occupied) {
    // an earlier run's checkpoints and log would otherwise mix with this run's (and win its rotation)
    const old = [...checkpointDirs(dir, true).map((d) => d.dir), path.join(dir, 'trainer_log.jsonl')].filter((p) =>
      existsSync(p),
    );
    for (const p of old) rmSync(p, { recursive: true, force: true });
    if (old.length)
      print(`overwrite_output_dir: removed the earlier run's ${old.map((p) => path.basename(p)).join(', ')}`);
  }
  return { resumeDir: null, runId: newRunId(), release };
}

/**
 * Makes output_dir, takes its lock (one run writes a folder at a time), then removes what a killed run of ours
 * left there: only now is the folder known to be this run's to tidy.
 */
function claim(dir: string, print: (l: string) => void): () => void {
  ensureDir(dir, 'output_dir');
  const release = lockFolder(dir, 'output_dir');
  const stale = removeStaleTemps(dir);
  if (stale.length) print(`removed what an interrupted run left in ${dir}: ${stale.join(', ')}`);
  return release;
}
