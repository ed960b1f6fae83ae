/**
 * Hugging Face Hub ids (org/name) found where huggingface_hub keeps them, so that models Python tools
 * downloaded are used where they lie: HF_HUB_CACHE, else HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub or
 * ~/.cache/huggingface/hub; a repository is models--org--name with refs/<revision> naming a commit and
 * snapshots/<commit>/ holding its files. A local folder of that name always wins. (Downloading what is not
 * cached: hub-download.ts.)
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

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

/** A Hub id (org/name) that is not a local path. */
export function isHubId(nameOrPath: string): boolean {
  return !existsSync(nameOrPath) && hubId.test(nameOrPath);
}

/** The cached snapshot of a repository at a revision (null when absent), and the folders searched. */
export function findCachedSnapshot(
  id: string,
  revision: string,
  kind: 'model' | 'dataset',
  env: NodeJS.ProcessEnv = process.env,
): { snapshot: string | null; searched: string[] } {
  const searched: string[] = [];
  for (const cache of hubCacheDirs(env)) {
    const repo = path.join(cache, `${kind}s--${id.replace('/', '--')}`);
    searched.push(repo);
    const ref = path.join(repo, 'refs', revision);
    const commit = existsSync(ref) ? readFileSync(ref, 'utf8').trim() : revision;
    const snapshot = path.join(repo, 'snapshots', commit);
    if (isDir(snapshot)) return { snapshot, searched };
  }
  return { snapshot: null, searched };
}
