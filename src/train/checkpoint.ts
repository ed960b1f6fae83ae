/**
 * checkpoint-N/ folders: the trainable weights, the optimiser moments and the trainer state (step, epoch,
 * position in the epoch, log history), written into a temporary folder that is renamed into place, so a
 * checkpoint is either complete or absent. Resuming restores all of it.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { LmfError } from '../errors.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { writeTextAtomic } from '../io/atomic.js';
import { tempPath } from '../io/dirs.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Optimizer } from './adamw.js';
import type { LogRecord } from './trainer-log.js';

export interface TrainerState {
  global_step: number;
  /** optimiser steps done within the current epoch */
  epoch_step: number;
  epoch: number;
  total_steps: number;
  log_history: LogRecord[];
  best_metric: null;
  /** the run that wrote this state (absent in checkpoints of LMFactory 0.1) */
  lmf_run?: RunIdentity;
  /** data-parallel ranks of the run that wrote it (absent: one) */
  lmf_world_size?: number;
}

/** A run's id and the config keys that resuming compares. */
export interface RunIdentity {
  run_id: string;
  config: Record<string, unknown>;
}

/** checkpoint-N folders by step; complete ones only, unless `incomplete` (to clear them all). */
export function checkpointDirs(outputDir: string, incomplete = false): { step: number; dir: string }[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m) => ({ step: Number(m[1]), dir: path.join(outputDir, m[0]) }))
    .filter((c) => incomplete || existsSync(path.join(c.dir, 'trainer_state.json')))
    .sort((a, b) => a.step - b.step);
}

export function readTrainerState(dir: string): TrainerState {
  const file = path.join(dir, 'trainer_state.json');
  let state: Partial<TrainerState>;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as Partial<TrainerState>;
  } catch (err) {
    throw new LmfError('bad_checkpoint', `trainer_state.json cannot be read (${(err as Error).message})`, {
      file,
      hint: 'the checkpoint is damaged: resume from an earlier checkpoint-N folder',
    });
  }
  if (typeof state?.global_step !== 'number' || !Array.isArray(state.log_history)) {
    throw new LmfError('bad_checkpoint', 'trainer_state.json lacks global_step or log_history', {
      file,
      hint: 'resume from an earlier checkpoint-N folder',
    });
  }
  return state as TrainerState;
}

/** This run's complete checkpoints (an earlier run's in the same folder are never rotated away). */
function ownCheckpoints(outputDir: string, runId: string | undefined): { step: number; dir: string }[] {
  return checkpointDirs(outputDir).filter((c) => {
    try {
      return readTrainerState(c.dir).lmf_run?.run_id === runId;
    } catch {
      return false;
    }
  });
}

/** Writes checkpoint-N (rank 0 only; the moments are gathered beforehand under ZeRO-1). */
export function saveCheckpoint(
  outputDir: string,
  trainable: [string, Tensor<'f32'>][],
  moments: { m: Tensor<'f32'>[]; v: Tensor<'f32'>[]; step: number },
  state: TrainerState,
  writeModel: (dir: string) => void,
  keep: number | undefined,
): string {
  const final = path.join(outputDir, `checkpoint-${state.global_step}`);
  const tmp = tempPath(final);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  writeModel(tmp);
  writeSafetensors(
    path.join(tmp, 'trainable.safetensors'),
    new Map(trainable.map(([n, t]) => [n, { tensor: t, dtype: 'F32' } as TensorToWrite])),
  );
  const entries = new Map<string, TensorToWrite>();
  trainable.forEach(([n], i) => {
    entries.set(`exp_avg.${n}`, { tensor: moments.m[i], dtype: 'F32' });
    entries.set(`exp_avg_sq.${n}`, { tensor: moments.v[i], dtype: 'F32' });
  });
  writeSafetensors(path.join(tmp, 'optimizer.safetensors'), entries, { step: String(moments.step) });
  writeTextAtomic(path.join(tmp, 'trainer_state.json'), `${JSON.stringify(state, null, 2)}\n`);
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  if (keep)
    for (const old of ownCheckpoints(outputDir, state.lmf_run?.run_id).slice(0, -keep))
      rmSync(old.dir, { recursive: true, force: true });
  return final;
}

export function loadCheckpoint(dir: string, trainable: [string, Tensor<'f32'>][], opt: Optimizer): TrainerState {
  const file = path.join(dir, 'trainable.safetensors');
  if (!existsSync(file))
    throw new LmfError('bad_checkpoint', 'the checkpoint has no trainable.safetensors', { file: dir });
  const weights = SafetensorsFile.open(file);
  let moments: SafetensorsFile | null = null;
  try {
    const optimizer = SafetensorsFile.open(path.join(dir, 'optimizer.safetensors'));
    moments = optimizer;
    trainable.forEach(([name, t]) => {
      const [w, m, v] = (
        [
          [weights, name],
          [optimizer, `exp_avg.${name}`],
          [optimizer, `exp_avg_sq.${name}`],
        ] as const
      ).map(([src, key]) => {
        const entry = src.entries.get(key);
        if (!entry || entry.shape.join() !== t.shape.join()) {
          throw new LmfError('bad_checkpoint', 'the checkpoint does not match this model and method', {
            file: dir,
            tensor: key,
            hint: 'resume with the same config the checkpoint was made with',
          });
        }
        return src.read(key, 'f32');
      });
      t.data.set(w.data as Float32Array);
      opt.loadMoments(t, m.data as Float32Array, v.data as Float32Array);
      for (const loaded of [w, m, v]) loaded.dispose();
    });
    opt.step = Number(moments.metadata.step ?? 0);
  } finally {
    weights.close();
    moments?.close();
  }
  return readTrainerState(dir);
}
