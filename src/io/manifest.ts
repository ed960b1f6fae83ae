/**
 * run.json: what made an output folder (the command, LMFactory's version, the resolved config, when). It also
 * marks the folder as ours, so that a later export may replace it while a folder of the user's is refused.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { lmfVersion } from '../version.js';
import { writeTextAtomic } from './atomic.js';

export const MANIFEST = 'run.json';

export interface RunManifest {
  command: string;
  lmfactory: string;
  created: string;
  config: Record<string, unknown>;
}

export function writeManifest(dir: string, command: string, config: object): void {
  const m: RunManifest = { command, lmfactory: lmfVersion, created: new Date().toISOString(), config: { ...config } };
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
