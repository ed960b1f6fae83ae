/**
 * Folders we write into: created safely, never overlapping the inputs they were made from, and cleaned of the
 * temporary files that a killed run left behind.
 */
import { existsSync, mkdirSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { LmfError, fromSystemError } from '../errors.js';

/**
 * mkdir -p without Node's recursive mkdir, which spins forever where mkdir answers ENOENT for a parent that
 * exists (under /proc): each missing folder is made once, and any refusal names the path.
 */
export function ensureDir(dir: string, key?: string): string {
  const target = path.resolve(dir);
  const missing: string[] = [];
  let at = target;
  while (!existsSync(at)) {
    missing.push(at);
    const parent = path.dirname(at);
    if (parent === at) break;
    at = parent;
  }
  if (existsSync(at) && !statSync(at).isDirectory()) {
    throw new LmfError('not_a_directory', `${at} is a file, so ${target} cannot be made`, {
      file: target,
      key,
      hint: 'choose another folder',
    });
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EEXIST' && statSync(d).isDirectory()) continue;
      if (e.code === 'ENOENT') {
        throw new LmfError(
          'cannot_create',
          `the folder ${d} cannot be created here (the file system refuses new folders)`,
          { file: target, key, hint: 'choose a folder on a normal writable disk' },
        );
      }
      throw fromSystemError(e, key) ?? e;
    }
  }
  return target;
}

/** Refuses a missing folder, or a file, where a model (or tokenizer) folder is expected. */
export function requireModelFolder(dir: string): void {
  if (!existsSync(dir)) {
    throw new LmfError('model_missing', 'the model folder does not exist', {
      file: dir,
      hint: 'model_name_or_path must name a folder with config.json, the tokenizer and *.safetensors',
    });
  }
  if (!statSync(dir).isDirectory()) {
    throw new LmfError('model_is_file', 'model_name_or_path is a file, not a model folder', {
      file: dir,
      hint: 'name the folder that holds config.json, the tokenizer and the *.safetensors files',
    });
  }
}

/** The real path of p, resolving links through its longest existing prefix (p itself need not exist). */
export function realPath(p: string): string {
  const abs = path.resolve(p);
  const tail: string[] = [];
  let at = abs;
  while (!existsSync(at)) {
    tail.unshift(path.basename(at));
    const parent = path.dirname(at);
    if (parent === at) return abs;
    at = parent;
  }
  return path.join(realpathSync(at), ...tail);
}

/** Whether `inner` is `outer` or lies inside it (both absolute, resolved). */
export function contains(outer: string, inner: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

export interface NamedPath {
  key: string;
  path: string;
}

/**
 * Refuses an output folder that is, contains or lies inside one of the inputs: writing it could replace the
 * model or adapter being read, and clearing it would delete them.
 */
export function refuseOverlap(output: NamedPath, inputs: (NamedPath | null | undefined)[]): void {
  const out = realPath(output.path);
  for (const input of inputs) {
    if (!input) continue;
    const inp = realPath(input.path);
    if (!contains(out, inp) && !contains(inp, out)) continue;
    const how = out === inp ? 'is' : contains(out, inp) ? 'contains' : 'lies inside';
    throw new LmfError(
      'output_overlaps_input',
      `${output.key} ${output.path} ${how} ${input.key} ${input.path}; writing there could destroy it`,
      {
        key: output.key,
        file: output.path,
        hint: `choose an ${output.key} apart from every model and adapter folder the run reads`,
      },
    );
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes `NAME.tmp-PID` files and folders in dir whose process is gone (left by a killed run); returns their names. */
export function removeStaleTemps(dir: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    const m = /\.tmp-(\d+)(?:-previous)?$/.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    rmSync(path.join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
