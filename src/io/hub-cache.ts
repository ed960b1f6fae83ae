/**
 * Hugging Face Hub ids (org/name) found where huggingface_hub keeps them, so that models Python tools
 * downloaded are used where they lie: HF_HUB_CACHE, else HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub or
 * ~/.cache/huggingface/hub; a repository is models--org--name with refs/<revision> naming a commit and
 * snapshots/<commit>/ holding its files. A local folder of that name always wins.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LmfError } from '../errors.js';

/** org/name (one slash, no leading dot or slash): the shape of a Hub id. */
const hubId = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/** The cache folders searched, in order. */
export function hubCacheDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.HF_HUB_CACHE) return [env.HF_HUB_CACHE];
  if (env.HUGGINGFACE_HUB_CACHE) return [env.HUGGINGFACE_HUB_CACHE];
  const home = env.HF_HOME ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface');
  return [path.join(home, 'hub')];
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The local folder for `nameOrPath`: itself when it exists (or is not shaped like a Hub id), else the cached
 * snapshot of that revision. A Hub id that is not cached stops with the id and the folders searched.
 */
export function resolveModelPath(
  nameOrPath: string,
  revision = 'main',
  kind: 'model' | 'dataset' = 'model',
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (existsSync(nameOrPath) || !hubId.test(nameOrPath)) return nameOrPath;
  const searched: string[] = [];
  for (const cache of hubCacheDirs(env)) {
    const repo = path.join(cache, `${kind}s--${nameOrPath.replace('/', '--')}`);
    searched.push(repo);
    const ref = path.join(repo, 'refs', revision);
    const commit = existsSync(ref) ? readFileSync(ref, 'utf8').trim() : revision;
    const snapshot = path.join(repo, 'snapshots', commit);
    if (isDir(snapshot)) return snapshot;
  }
  throw new LmfError(
    'model_not_cached',
    `"${nameOrPath}" (revision ${revision}) is neither a folder nor in the Hugging Face cache`,
    {
      hint: `searched ${searched.join(', ')}; download it there (huggingface-cli download ${nameOrPath}) or give a local folder`,
    },
  );
}
