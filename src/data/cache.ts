/**
 * The tokenised-data cache: prepared data is stored under a key that hashes every input that can change
 * it (the dataset files' bytes, dataset_info.json, the tokenizer files, the template and the data options),
 * so any change misses the cache and nothing stale is ever read. Files are gzipped JSON, written atomically.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { TrainConfig } from '../config/schema.js';
import { LmfError } from '../errors.js';
import { writeFileAtomic, writeAll } from '../io/atomic.js';
import { ensureDir } from '../io/dirs.js';
import { combinedDigest, fileDigests, type FileDigest } from '../io/digest.js';
import type { RowProblem } from './formats.js';
import type { DataStats, ProcessedSet } from './pipeline.js';

export interface CachedData {
  train: ProcessedSet;
  eval: ProcessedSet | null;
  problems: RowProblem[];
  stats: DataStats;
}

const VERSION = 2;

export function cacheDir(): string {
  return process.env.LMF_CACHE ?? path.join(os.homedir(), '.cache', 'lmfactory', 'tokenized');
}

/** The files prepared data is made from, hashed once: for the cache key and the run manifest. */
export interface DataInputs {
  /** dataset_info.json, then every dataset file */
  data: FileDigest[];
  /** tokenizer.json and tokenizer_config.json; empty when the tokenizer has no folder */
  tokenizer: FileDigest[];
}

export function dataInputs(catalogue: string | null, datasetPaths: string[], tokenizerDir: string | null): DataInputs {
  const info = catalogue === null ? [] : [path.join(catalogue, 'dataset_info.json')];
  return {
    data: [...info, ...datasetPaths].flatMap(fileDigests),
    tokenizer: tokenizerDir
      ? ['tokenizer.json', 'tokenizer_config.json'].flatMap((f) => fileDigests(path.join(tokenizerDir, f)))
      : [],
  };
}

/** The key of a prepared-data result; null when the inputs cannot be pinned down (no tokenizer folder). */
export function cacheKey(c: TrainConfig, inputs: DataInputs, templateId: string): string | null {
  if (!inputs.tokenizer.length) return null;
  const h = createHash('sha256');
  h.update(
    JSON.stringify({
      VERSION,
      templateId,
      stage: c.stage,
      dataset: c.dataset,
      eval_dataset: c.eval_dataset,
      cutoff_len: c.cutoff_len,
      max_samples: c.max_samples,
      val_size: c.val_size,
      packing: c.packing,
      train_on_prompt: c.train_on_prompt,
      mask_history: c.mask_history,
      mix_strategy: c.mix_strategy,
      interleave_probs: c.interleave_probs,
      enable_thinking: c.enable_thinking,
      seed: c.seed,
    }),
  );
  h.update(combinedDigest([...inputs.data, ...inputs.tokenizer]));
  return h.digest('hex').slice(0, 32);
}

export function readCache(key: string): CachedData | null {
  const file = path.join(cacheDir(), `${key}.json.gz`);
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(gunzipSync(readFileSync(file)).toString('utf8')) as CachedData;
  } catch {
    return null; // a damaged cache entry is rebuilt, never trusted
  }
}

export function writeCache(key: string, data: CachedData): void {
  writeGzippedJson(path.join(cacheDir(), `${key}.json.gz`), data);
}

function writeGzippedJson(file: string, value: unknown): void {
  const bytes = gzipSync(Buffer.from(JSON.stringify(value), 'utf8'), { level: 1 });
  writeFileAtomic(file, (fd) => writeAll(fd, bytes));
}

/** LLaMA-Factory's tokenized_path: prepared data saved to a folder of the user's, and read back from it. */
const tokenizedFile = 'lmf_tokenized.json.gz';

export interface TokenizedFolder {
  data: CachedData;
  inputs: DataInputs;
}

/** The prepared data a tokenized_path holds, or null when the folder has none yet. */
export function readTokenizedFolder(dir: string): TokenizedFolder | null {
  const file = path.join(dir, tokenizedFile);
  if (!existsSync(file)) {
    if (existsSync(path.join(dir, 'dataset_dict.json')) || existsSync(path.join(dir, 'dataset_info.json')))
      throw new LmfError(
        'bad_value',
        'tokenized_path holds a Hugging Face datasets folder (LLaMA-Factory writes those)',
        {
          file: dir,
          key: 'tokenized_path',
          hint: 'LMFactory writes its own tokenized data there: point tokenized_path at a new folder',
        },
      );
    return null;
  }
  try {
    return JSON.parse(gunzipSync(readFileSync(file)).toString('utf8')) as TokenizedFolder;
  } catch (err) {
    throw new LmfError('bad_value', `tokenized data cannot be read (${(err as Error).message})`, {
      file,
      key: 'tokenized_path',
      hint: 'delete the folder to tokenize again',
    });
  }
}

export function writeTokenizedFolder(dir: string, saved: TokenizedFolder): string {
  ensureDir(dir, 'tokenized_path');
  const file = path.join(dir, tokenizedFile);
  writeGzippedJson(file, saved);
  return file;
}
