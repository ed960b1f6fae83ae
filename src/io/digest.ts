/** Content digests of input files (sha256 and size), for cache keys and run manifests. */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

export interface FileDigest {
  file: string;
  bytes: number;
  sha256: string;
}

/** Every file at p (p itself, or the files under a folder, in name order); nothing when p does not exist. */
export function fileDigests(p: string): FileDigest[] {
  if (!existsSync(p)) return [];
  if (statSync(p).isDirectory())
    return readdirSync(p)
      .sort()
      .flatMap((f) => fileDigests(path.join(p, f)));
  const bytes = readFileSync(p);
  return [{ file: p, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }];
}

/** One digest over several files' digests (names included). */
export function combinedDigest(digests: FileDigest[]): string {
  const h = createHash('sha256');
  for (const d of digests) h.update(`${d.file}\0${d.sha256}\0`);
  return h.digest('hex');
}
