/**
 * run.json: what made an output folder — the command, LMFactory's version and git commit, the resolved config,
 * when, and what a command adds (data files' sizes and hashes, tokenizer and template hashes, threads, the
 * kernels' instruction set). It also marks the folder as ours, so that a later export may replace it while a
 * folder of the user's is refused.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { lmfVersion, packageRoot } from '../version.js';
import { writeTextAtomic } from './atomic.js';

export const MANIFEST = 'run.json';

export interface RunManifest {
  command: string;
  lmfactory: string;
  /** the commit of the LMFactory checkout that ran (null for an installed package) */
  commit: string | null;
  created: string;
  config: Record<string, unknown>;
  [detail: string]: unknown;
}

let commit: string | null | undefined;

function lmfCommit(): string | null {
  if (commit === undefined) {
    const r = existsSync(path.join(packageRoot, '.git'))
      ? spawnSync('git', ['-C', packageRoot, 'rev-parse', 'HEAD'], { encoding: 'utf8' })
      : null;
    commit = r?.status === 0 ? r.stdout.trim() : null;
  }
  return commit;
}

export function writeManifest(
  dir: string,
  command: string,
  config: object,
  details: Record<string, unknown> = {},
): void {
  const m: RunManifest = {
    command,
    lmfactory: lmfVersion,
    commit: lmfCommit(),
    created: new Date().toISOString(),
    config: { ...config },
    ...details,
  };
  writeTextAtomic(path.join(dir, MANIFEST), `${JSON.stringify(m, null, 2)}\n`);
}

/** The manifest in dir, or null when there is none or it is not ours. */
export function readManifest(dir: string): RunManifest | null {
  const file = path.join(dir, MANIFEST);
  if (!existsSync(file)) return null;
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as Partial<RunManifest>;
    return typeof m.command === 'string' && typeof m.lmfactory === 'string' ? (m as RunManifest) : null;
  } catch {
    return null;
  }
}
