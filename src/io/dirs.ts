/**
 * Folders we write into: created safely, never overlapping the inputs they were made from, and cleaned of the
 * temporary files that a killed run left behind.
 */
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
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

function lexists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * The real path of p, resolving links through its longest existing prefix (p itself need not exist); a
 * dangling link is followed to where it points, so a path through it cannot pass for one inside a folder.
 */
export function realPath(p: string, depth = 0): string {
  const abs = path.resolve(p);
  const tail: string[] = [];
  let at = abs;
  while (!lexists(at)) {
    tail.unshift(path.basename(at));
    const parent = path.dirname(at);
    if (parent === at) return abs;
    at = parent;
  }
  if (!existsSync(at) && depth < 40) {
    // a dangling symbolic link: resolve it (relative to its folder) and go on from there
    return path.join(realPath(path.resolve(path.dirname(at), readlinkSync(at)), depth + 1), ...tail);
  }
  return path.join(realpathSync(at), ...tail);
}

/** Whether `inner` is `outer` or lies inside it (both absolute, resolved). */
export function contains(outer: string, inner: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
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

/**
 * Whether a process with this id runs on this machine (ours counts). A zombie does not: it has exited and waits to
 * be reaped, which can take seconds where mpirun left a killed job's ranks to a container's init (or forever where
 * that init never reaps), yet `kill(pid, 0)` still finds it.
 */
export function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !exited(pid);
}

/**
 * Whether a process that `kill(pid, 0)` found has exited: a zombie (state Z, or X while it is being reaped), or
 * gone since. Read from /proc (Linux); where there is none, unknown, so false.
 */
function exited(pid: number): boolean {
  const stat = procStat(pid);
  if (!stat) return existsSync('/proc/self/stat');
  return stat[0] === 'Z' || stat[0] === 'X';
}

/** /proc/PID/stat's fields from the third (the state) on, or null (no such process, or no /proc). */
function procStat(pid: number): string[] | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // "pid (command name) state …": the name may itself hold spaces and parentheses
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** When a process started (clock ticks since boot: stat's 22nd field): tells it from a later one given its id. */
function startTicks(pid: number): string | undefined {
  return procStat(pid)?.[19];
}

/** Where this process writes `target` before renaming it into place: `NAME.tmp-PID`, as removeStaleTemps knows it. */
export function tempPath(target: string): string {
  return `${target}.tmp-${process.pid}`;
}

/**
 * Removes `NAME.tmp-PID` files and folders in dir whose process is gone (left by a killed run of ours); with
 * `prefix`, only those whose NAME starts with it. Returns their names.
 */
export function removeStaleTemps(dir: string, prefix = ''): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    const m = /\.tmp-(\d+)(?:-previous)?$/.exec(name);
    if (!m || !name.startsWith(prefix) || alive(Number(m[1]))) continue;
    rmSync(path.join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Whether a lock's process (of this host) still runs: its id is alive and, where both are known, started when the
 * lock says (a start time /proc does not show, as another user's under hidepid, proves nothing).
 */
function holderAlive(holder: { pid?: number; started?: string }): boolean {
  const pid = Number(holder.pid);
  if (!alive(pid)) return false;
  const started = startTicks(pid);
  return holder.started === undefined || started === undefined || started === holder.started;
}

/** The lock file of a folder one run writes (train's output_dir). */
export const LOCK_FILE = '.lmf.lock';

/**
 * Claims `dir` for this process: `.lmf.lock` made exclusively, holding this host, process id and start time.
 * Another live run's lock is refused naming it; a lock left by a process of this host that is gone (or whose id
 * another process now has) is taken over. The lock goes at exit (or through the returned release).
 */
export function lockFolder(dir: string, key: string): () => void {
  const file = path.join(dir, LOCK_FILE);
  const mine = JSON.stringify({ host: hostname(), pid: process.pid, started: startTicks(process.pid) });
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(file, mine, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw fromSystemError(err, key) ?? err;
      let holder: { host?: string; pid?: number; started?: string } = {};
      try {
        holder = JSON.parse(readFileSync(file, 'utf8')) as typeof holder;
      } catch {
        // unreadable: written by a run killed mid-write, taken over below
      }
      // on this host: gone when its process is, or when another process has since been given its id
      const gone = holder.host === undefined || (holder.host === hostname() && !holderAlive(holder));
      if (!gone) {
        throw new LmfError(
          'output_busy',
          `another run (process ${holder.pid} on ${holder.host}) is writing this folder`,
          {
            file: dir,
            key,
            hint: `wait for it to finish, or choose another ${key}; if that run is gone, delete ${file}`,
          },
        );
      }
      rmSync(file, { force: true });
    }
  }
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.removeListener('exit', release);
    try {
      if (readFileSync(file, 'utf8') === mine) rmSync(file, { force: true });
    } catch {
      // already gone
    }
  };
  process.on('exit', release);
  return release;
}
