/**
 * Which folders the web UI may read and write: the working directory and the model and data folders it was
 * started with. Every path a request names is resolved (symbolic links included) and must lie inside one.
 */
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';

export class PathGuard {
  readonly roots: string[];

  constructor(roots: string[]) {
    this.roots = [...new Set(roots.map((r) => realpathSync(path.resolve(r))))];
  }

  /** The absolute path, or null when it escapes every root (after following links as far as the path exists). */
  resolve(p: string): string | null {
    if (typeof p !== 'string' || !p || p.includes('\0')) return null;
    const abs = path.resolve(p);
    // follow links through the longest existing prefix, then append the rest
    let existing = abs;
    const rest: string[] = [];
    while (!existsSync(existing)) {
      rest.unshift(path.basename(existing));
      const parent = path.dirname(existing);
      if (parent === existing) return null;
      existing = parent;
    }
    const real = path.join(realpathSync(existing), ...rest);
    return this.roots.some((r) => real === r || real.startsWith(r + path.sep)) ? real : null;
  }
}

/** Config keys that hold paths, checked before any config reaches the CLI. */
export const pathKeys = ['model_name_or_path', 'adapter_name_or_path', 'dataset_dir', 'output_dir', 'ref_model', 'export_dir', 'task_dir', 'save_dir'] as const;
