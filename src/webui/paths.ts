/**
 * Which folders the web UI may read and write: the working directory and the model and data folders it was
 * started with. Every path a request names is resolved (symbolic links included) and must lie inside one.
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { contains, realPath } from '../io/dirs.js';

export class PathGuard {
  readonly roots: string[];

  constructor(roots: string[]) {
    this.roots = [...new Set(roots.map((r) => realpathSync(path.resolve(r))))];
  }

  /** The absolute path, or null when it escapes every root (after following links as far as the path exists). */
  resolve(p: string): string | null {
    if (typeof p !== 'string' || !p || p.includes('\0')) return null;
    const real = realPath(p);
    return this.roots.some((r) => contains(r, real)) ? real : null;
  }
}

/** Config keys that hold paths, checked before any config reaches the CLI. */
export const pathKeys = [
  'model_name_or_path',
  'adapter_name_or_path',
  'dataset_dir',
  'output_dir',
  'ref_model',
  'export_dir',
  'task_dir',
  'save_dir',
] as const;
