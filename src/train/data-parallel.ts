/**
 * What the trainer does differently in a world of several ranks: threads shared out among the ranks of a
 * machine, one check at start that every rank trains the same config on the same data and model, rank 0's
 * decisions (which checkpoint to resume) told to the others, and each step's figures added over the ranks.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { TrainConfig } from '../config/schema.js';
import type { PreparedData } from '../data/pipeline.js';
import type { World } from '../distributed/world.js';
import { LmfError } from '../errors.js';
import { setThreadBudget, usableCpus } from '../threads.js';
import type { StepResult } from './stages/index.js';

/**
 * The ZeRO stage a `deepspeed` JSON asks for, as this engine runs it: 0 (none), or 1 for stages 1 and 2 (the
 * optimiser's moments sharded; stage 2's gradient sharding changes nothing here, where the gradients of a
 * step are reduced once after backward). Stage 3 is refused.
 */
export function zeroStage(c: TrainConfig): 0 | 1 {
  if (!c.deepspeed) return 0;
  let stage: unknown;
  try {
    const json = JSON.parse(readFileSync(c.deepspeed, 'utf8')) as { zero_optimization?: { stage?: unknown } };
    stage = json.zero_optimization?.stage ?? 0;
  } catch (err) {
    throw new LmfError('bad_config', `the deepspeed config cannot be read (${(err as Error).message})`, {
      file: c.deepspeed,
      key: 'deepspeed',
      hint: "point deepspeed at a DeepSpeed JSON such as LLaMA-Factory's examples/deepspeed/ds_z2_config.json",
    });
  }
  if (stage === 0 || stage === 1 || stage === 2) return stage === 0 ? 0 : 1;
  throw new LmfError(
    'unsupported',
    stage === 3
      ? 'ZeRO stage 3 is not supported: it shards the weights, so every layer of every step would be gathered over the network, which CPU clusters cannot hide'
      : `zero_optimization.stage ${JSON.stringify(stage)} is not a ZeRO stage`,
    { file: c.deepspeed, key: 'deepspeed', hint: 'use stage 1 or 2 (the optimiser sharded), or leave deepspeed unset' },
  );
}

/** Without OMP_NUM_THREADS, the ranks on one machine share its CPUs (this process's affinity) evenly. */
export function shareThreads(world: World): void {
  if (world.size === 1 || process.env.OMP_NUM_THREADS) return;
  setThreadBudget(Math.max(1, Math.floor(usableCpus() / world.localSize)));
}

/** The micro-batches of a step that rank r runs: an even, contiguous slice of the global batch. */
export function ownsMicro(world: World, count: number): (k: number) => boolean {
  const from = Math.floor((count * world.rank) / world.size),
    to = Math.floor((count * (world.rank + 1)) / world.size);
  return (k) => k >= from && k < to;
}

/** Rank 0's text, on every rank. */
export function fromMain(world: World, text: string): string {
  if (world.size === 1) return text;
  const own = new TextEncoder().encode(world.isMain ? text : '');
  const lengths = Float64Array.of(own.length);
  world.sumScalars(lengths);
  const padded = new Uint8Array(lengths[0]);
  padded.set(own);
  return new TextDecoder().decode(world.allgatherBytes(padded)[0]);
}

function digest(parts: unknown): Uint8Array {
  return createHash('sha256').update(JSON.stringify(parts)).digest();
}

/** The model folder as it bears on training: config.json's text, and every file's name and size. */
function folderFingerprint(dir: string | undefined): unknown {
  if (!dir || !existsSync(dir) || !statSync(dir).isDirectory()) return dir ?? null;
  const config = path.join(dir, 'config.json');
  return {
    config: existsSync(config) ? readFileSync(config, 'utf8') : null,
    files: readdirSync(dir)
      .sort()
      .map((f) => [f, statSync(path.join(dir, f)).size]),
  };
}

/**
 * Stops every rank, naming the ranks that differ, when the ranks were started with different configs, data or
 * models (a stale copy on one machine would otherwise train silently on something else).
 */
export function checkSameRun(world: World, c: TrainConfig, data: PreparedData): void {
  if (world.size === 1) return;
  const parts = {
    config: digest(c),
    data: digest([data.inputs.data, data.stats.examples, data.stats.lengths]),
    model: digest([folderFingerprint(c.model_name_or_path), (c.adapter_name_or_path ?? []).map(folderFingerprint)]),
  };
  const names = Object.keys(parts) as (keyof typeof parts)[];
  const mine = new Uint8Array(32 * names.length);
  names.forEach((n, i) => mine.set(parts[n], 32 * i));
  const all = world.allgatherBytes(mine);
  const differ = names
    .map((n, i) => {
      const ranks = all
        .map((bytes, r) =>
          Buffer.compare(bytes.subarray(32 * i, 32 * i + 32), all[0].subarray(32 * i, 32 * i + 32)) ? r : -1,
        )
        .filter((r) => r >= 0);
      return ranks.length
        ? `${n} (${ranks.length > 1 ? 'ranks' : 'rank'} ${ranks.join(', ')} ${ranks.length > 1 ? 'differ' : 'differs'} from rank 0)`
        : null;
    })
    .filter((d) => d !== null);
  if (differ.length)
    throw new LmfError('world_mismatch', `the ranks of this job do not train the same run: ${differ.join('; ')}`, {
      hint: 'start every rank with the same YAML, dataset files and model folder (a shared filesystem, or identical copies)',
    });
}

/** The step's figures summed over the ranks (each rank ran its share), and whether any rank was interrupted. */
export function sumOverRanks(
  world: World,
  result: StepResult,
  interrupted: boolean,
): { result: StepResult; interrupted: boolean } {
  if (world.size === 1) return { result, interrupted };
  const keys = Object.keys(result.metrics).sort();
  const values = Float64Array.from([
    result.loss,
    result.tokens,
    interrupted ? 1 : 0,
    ...keys.map((k) => result.metrics[k]),
  ]);
  world.sumScalars(values);
  return {
    result: {
      loss: values[0],
      tokens: values[1],
      metrics: Object.fromEntries(keys.map((k, i) => [k, values[3 + i]])),
    },
    interrupted: values[2] > 0,
  };
}
