/**
 * From a config to tokenised training and evaluation sets: resolve datasets in dataset_info.json, read and
 * convert their rows (collecting row problems), sample, mix, split off a validation set, and run the
 * stage's processor with the template and tokenizer.
 */
import { LmfError } from '../errors.js';
import { notice } from '../util/notice.js';
import { pushAll } from '../util/arrays.js';
import type { TrainConfig } from '../config/schema.js';
import { Rng } from '../tensor/random.js';
import {
  cacheKey,
  dataInputs,
  readCache,
  readTokenizedFolder,
  writeCache,
  writeTokenizedFolder,
  type DataInputs,
} from './cache.js';
import { catalogueDir, fetchHubFiles, resolveDatasets, type DatasetAttr } from './dataset-info.js';
import { checkColumns, convertRow, type RowProblem, type StageKind } from './formats.js';
import { loadRows, type Row } from './loaders.js';
import type { AlignedExample, Message } from './messages.js';
import type { Encoded, ProcessOptions, AnyTemplate } from './processors/common.js';
import { encodeKto, type EncodedKto } from './processors/kto.js';
import { encodePairwise, type EncodedPair } from './processors/pairwise.js';
import { documentIds, packDocuments, truncateDocuments } from './processors/pretrain.js';
import { encodeSupervised } from './processors/supervised.js';
import { resolveTemplate } from './templates/registry.js';
import { HfTokenizer, type TextTokenizer } from './tokenizer.js';
import { processOnWorkers, workerCount } from './worker-pool.js';

export type ProcessedSet =
  | { kind: 'pt' | 'sft'; examples: Encoded[] }
  | { kind: 'pairwise'; pairs: EncodedPair[] }
  | { kind: 'kto'; examples: EncodedKto[] };

export interface DataStats {
  rowsRead: number;
  rowsDropped: number;
  examples: number;
  truncated: number;
  /** sft examples left with no trained token after truncation to cutoff_len (dropped) */
  noTarget: number;
  /** token lengths of the processed training examples */
  lengths: number[];
}

export interface PreparedData {
  train: ProcessedSet;
  eval: ProcessedSet | null;
  problems: RowProblem[];
  stats: DataStats;
  template: AnyTemplate;
  tokenizer: TextTokenizer;
  /** true when the tokenised data came from the cache */
  fromCache: boolean;
  /** the data and tokenizer files it was made from, with their hashes */
  inputs: DataInputs;
}

export function stageKind(stage: TrainConfig['stage']): StageKind {
  return stage === 'pt' ? 'pt' : stage === 'sft' ? 'sft' : stage === 'kto' ? 'kto' : 'pairwise';
}

/** What defines a template's rendering: a named template's spec, or the tokenizer's chat_template text. */
export function templateFingerprint(t: AnyTemplate, tok: TextTokenizer): string {
  return 'spec' in t ? JSON.stringify(t.spec) : (tok.chatTemplate ?? '');
}

/** LLaMA-Factory's num_samples: a random subset, or up-sampling with replacement past the dataset's size. */
function sampleExactly<T>(items: T[], n: number, rng: Rng): T[] {
  const order = rng.shuffle(items.map((_, i) => i));
  const out = order.slice(0, Math.min(n, items.length)).map((i) => items[i]);
  while (out.length < n) out.push(items[rng.int(items.length)]);
  return out;
}

async function readDataset(
  attr: DatasetAttr,
  kind: StageKind,
  problems: RowProblem[],
  counts: { read: number },
): Promise<AlignedExample[]> {
  if (kind === 'pairwise' && !attr.ranking) {
    throw new LmfError('dataset_stage', `dataset "${attr.name}" is not a preference dataset, which this stage needs`, {
      key: 'dataset',
      hint: 'set "ranking": true in dataset_info.json for chosen/rejected data',
    });
  }
  if (kind !== 'pairwise' && attr.ranking) {
    throw new LmfError(
      'dataset_stage',
      `dataset "${attr.name}" is a preference dataset (ranking: true), which this stage cannot use`,
      { key: 'dataset', hint: 'use stage rm or dpo for it' },
    );
  }
  const rows: Row[] = [];
  for (const f of attr.files ?? [attr.path]) pushAll(rows, await loadRows(f));
  if (!rows.length)
    throw new LmfError('empty_dataset', `dataset "${attr.name}" has no rows`, {
      file: attr.path,
      hint: 'check the file (or folder) that dataset_info.json names',
    });
  counts.read += rows.length;
  checkColumns(attr, rows, kind);
  const out: AlignedExample[] = [];
  for (const r of rows) {
    const c = convertRow(attr, r, kind);
    if ('example' in c) out.push(c.example);
    else problems.push(c.problem);
  }
  return out;
}

function mix(sets: AlignedExample[][], c: TrainConfig, rng: Rng): AlignedExample[] {
  if (c.mix_strategy === 'concat' || sets.length === 1) return sets.flat();
  const probs = c.interleave_probs ?? sets.map(() => 1 / sets.length);
  if (probs.length !== sets.length || Math.abs(probs.reduce((a, b) => a + b, 0) - 1) > 1e-6) {
    throw new LmfError(
      'bad_value',
      `interleave_probs must give one probability per dataset (${sets.length}) summing to 1`,
      { key: 'interleave_probs' },
    );
  }
  const next = sets.map(() => 0);
  const done = sets.map(() => false);
  const out: AlignedExample[] = [];
  for (;;) {
    let u = rng.uniform(),
      k = 0;
    while (k < probs.length - 1 && u >= probs[k]) u -= probs[k++];
    if (next[k] >= sets[k].length) {
      done[k] = true;
      if (c.mix_strategy === 'interleave_under' || done.every(Boolean)) break;
      next[k] = 0; // interleave_over: start that dataset again until every one has been seen in full
    }
    out.push(sets[k][next[k]++]);
  }
  return out;
}

function splitValidation(items: AlignedExample[], valSize: number, rng: Rng): [AlignedExample[], AlignedExample[]] {
  if (!valSize) return [items, []];
  const n = valSize < 1 ? Math.round(items.length * valSize) : Math.floor(valSize);
  if (n <= 0 || n >= items.length) {
    throw new LmfError(
      'bad_value',
      n <= 0
        ? `val_size ${valSize} takes no example of ${items.length} for evaluation`
        : `val_size ${valSize} takes ${n} examples for evaluation and leaves none of ${items.length} for training`,
      { key: 'val_size', hint: 'a fraction below 1 (0.1 = 10%) or a row count smaller than the dataset' },
    );
  }
  const order = rng.shuffle(items.map((_, i) => i));
  return [order.slice(n).map((i) => items[i]), order.slice(0, n).map((i) => items[i])];
}

/** Characters kept beyond the truncation bound, so that the word at the cut is still whole. */
const CLIP_SLACK = 1024;

/**
 * A message's text cut to what truncation to cutoff_len can keep: no token is longer than the vocabulary's
 * longest spelling, so characters past cutoffLen of those never reach a training example, and a 10 MB row is
 * not tokenised in full (seconds to minutes) only to be cut. Pre-training keeps documents whole (they are packed).
 */
function clipMessages(items: AlignedExample[], tok: TextTokenizer, cutoffLen: number): AlignedExample[] {
  if (!(tok instanceof HfTokenizer)) return items;
  const bound = cutoffLen * tok.vocabularyFacts.maxTokenChars + CLIP_SLACK;
  const clip = (m: Message): Message => {
    if (m.content.length <= bound) return m;
    const space = m.content.indexOf(' ', bound - CLIP_SLACK);
    return { ...m, content: m.content.slice(0, space >= 0 && space < bound ? space : bound) };
  };
  const long = (m: Message) => m.content.length > bound;
  return items.map((e) =>
    e.prompt.some(long) || e.response.some(long)
      ? { ...e, prompt: e.prompt.map(clip), response: e.response.map(clip) }
      : e,
  );
}

/**
 * Runs the stage's processor over aligned examples. For pt, `documentsOnly` returns each document's ids
 * unpacked (workers tokenise, the caller packs the concatenation).
 */
export function processExamples(
  kind: StageKind,
  items: AlignedExample[],
  t: AnyTemplate,
  tok: TextTokenizer,
  c: TrainConfig,
  stats?: DataStats,
  documentsOnly = false,
): ProcessedSet {
  const o: ProcessOptions = {
    cutoffLen: c.cutoff_len,
    trainOnPrompt: c.train_on_prompt,
    maskHistory: c.mask_history,
    enableThinking: c.enable_thinking,
  };
  if (kind === 'pt') {
    const docs = items.map((e) => documentIds(tok, e, tok.eosId));
    if (documentsOnly) return { kind, examples: docs.map((ids) => ({ ids, labels: ids })) };
    return packOrTruncate(tok, docs, c, stats);
  }
  items = clipMessages(items, tok, c.cutoff_len);
  if (kind === 'sft') {
    const encoded = items.map((e) => {
      const enc = encodeSupervised(t, tok, e, o);
      if (stats && enc.truncated) stats.truncated++;
      return { ids: enc.ids, labels: enc.labels };
    });
    const examples = encoded.filter((e) => e.labels.some((l) => l >= 0));
    if (stats) stats.noTarget += encoded.length - examples.length;
    return { kind, examples };
  }
  if (kind === 'pairwise') return { kind, pairs: items.map((e) => encodePairwise(t, tok, e, o)) };
  return { kind, examples: encodeKto(t, tok, items, o) };
}

function packOrTruncate(tok: TextTokenizer, docs: number[][], c: TrainConfig, stats?: DataStats): ProcessedSet {
  const packing = c.packing ?? true;
  if (stats && !packing) stats.truncated += docs.filter((d) => d.length > c.cutoff_len).length;
  return {
    kind: 'pt',
    examples: packing ? packDocuments(tok, docs, c.cutoff_len) : truncateDocuments(docs, c.cutoff_len),
  };
}

/**
 * processExamples, with every text the examples need encoded in one batch by the Rust binding when it is
 * installed (the texts are collected by a first pass that records instead of encoding).
 */
export async function processBatched(
  kind: StageKind,
  items: AlignedExample[],
  t: AnyTemplate,
  tok: TextTokenizer,
  c: TrainConfig,
  stats?: DataStats,
  documentsOnly = false,
): Promise<ProcessedSet> {
  if (tok instanceof HfTokenizer) {
    const texts = tok.record(() => processExamples(kind, items, t, tok, c, undefined, documentsOnly));
    if (await tok.prefetch(texts)) {
      try {
        return processExamples(kind, items, t, tok, c, stats, documentsOnly);
      } finally {
        tok.clearPrefetch();
      }
    }
  }
  return processExamples(kind, items, t, tok, c, stats, documentsOnly);
}

/** Examples encoded per batch of the Rust binding. */
const BATCH_CHUNK = 4096;
/** Below this many examples, starting workers costs more than it saves. */
const WORKER_MIN_EXAMPLES = 512;

export async function processAll(
  kind: StageKind,
  items: AlignedExample[],
  t: AnyTemplate,
  tok: TextTokenizer,
  c: TrainConfig,
  stats?: DataStats,
): Promise<ProcessedSet> {
  const n = workerCount(c);
  const dir = tok instanceof HfTokenizer ? tok.dir : null;
  if (tok instanceof HfTokenizer && tok.hasBatchEncoder() && kind !== 'kto') {
    // the Rust binding encodes each batch on all cores itself: chunks on this thread keep memory bounded
    const sets: ProcessedSet[] = [];
    for (let i = 0; i < items.length; i += BATCH_CHUNK) {
      sets.push(await processBatched(kind, items.slice(i, i + BATCH_CHUNK), t, tok, c, stats, kind === 'pt'));
    }
    return joinSets(kind, sets, tok, c, stats);
  }
  if (n < 2 || !dir || items.length < WORKER_MIN_EXAMPLES || kind === 'kto')
    return processBatched(kind, items, t, tok, c, stats);
  const { sets, truncated, noTarget } = await processOnWorkers(kind, items, c, dir, n);
  if (stats) {
    stats.truncated += truncated;
    stats.noTarget += noTarget;
  }
  return joinSets(kind, sets, tok, c, stats);
}

/** Chunk results in order as one set; pt chunks hold documents, packed (or truncated) here. */
function joinSets(
  kind: StageKind,
  sets: ProcessedSet[],
  tok: TextTokenizer,
  c: TrainConfig,
  stats?: DataStats,
): ProcessedSet {
  if (kind === 'pt') {
    const docs = sets.flatMap((s) => (s.kind === 'pt' ? s.examples.map((e) => e.ids) : []));
    return packOrTruncate(tok, docs, c, stats);
  }
  if (kind === 'pairwise') return { kind, pairs: sets.flatMap((s) => (s.kind === 'pairwise' ? s.pairs : [])) };
  return { kind: 'sft', examples: sets.flatMap((s) => (s.kind === 'sft' ? s.examples : [])) };
}

function sizeOf(s: ProcessedSet): number {
  return s.kind === 'pairwise' ? s.pairs.length : s.examples.length;
}

export function lengthsOf(s: ProcessedSet): number[] {
  if (s.kind === 'pairwise') return s.pairs.map((p) => Math.max(p.chosen.ids.length, p.rejected.ids.length));
  if (s.kind === 'kto') return s.examples.map((e) => e.example.ids.length);
  return s.examples.map((e) => e.ids.length);
}

/** The named datasets read, sampled (num_samples, max_samples) and mixed (mix_strategy). */
async function loadMixed(
  attrs: DatasetAttr[],
  kind: StageKind,
  c: TrainConfig,
  rng: Rng,
  problems: RowProblem[],
  counts: { read: number },
): Promise<AlignedExample[]> {
  const sets: AlignedExample[][] = [];
  for (const attr of attrs) {
    let items = await readDataset(attr, kind, problems, counts);
    if (attr.numSamples) items = sampleExactly(items, attr.numSamples, rng);
    if (c.max_samples) items = items.slice(0, c.max_samples);
    sets.push(items);
  }
  return mix(sets, c, rng);
}

/** The examples prediction answers (eval_dataset, else dataset), encoded as sft encodes them; no cache. */
export async function preparePredictData(
  c: TrainConfig,
  tokenizer: TextTokenizer,
  template: AnyTemplate,
): Promise<{ examples: Encoded[]; problems: RowProblem[] }> {
  const names = c.eval_dataset?.length ? c.eval_dataset : c.dataset;
  if (!names?.length)
    throw new LmfError('bad_value', 'prediction needs eval_dataset (or dataset)', { key: 'eval_dataset' });
  const problems: RowProblem[] = [];
  const attrs = resolveDatasets(names, await catalogueDir(c.dataset_dir));
  await fetchHubFiles(attrs);
  const items = await loadMixed(attrs, 'sft', c, new Rng(c.seed), problems, {
    read: 0,
  });
  const set = await processAll('sft', items, template, tokenizer, c);
  if (set.kind !== 'sft') throw new LmfError('internal', 'prediction data must be sft data');
  return { examples: set.examples, problems };
}

export async function prepareData(c: TrainConfig, tok?: TextTokenizer): Promise<PreparedData> {
  const saved = c.tokenized_path ? readTokenizedFolder(c.tokenized_path) : null;
  if (saved) {
    const tokenizer = tok ?? HfTokenizer.fromDir(c.model_name_or_path);
    if (saved.data.train.kind !== stageKind(c.stage))
      throw new LmfError(
        'bad_value',
        `tokenized_path holds ${saved.data.train.kind} data; stage ${c.stage} needs other`,
        {
          file: c.tokenized_path,
          key: 'tokenized_path',
        },
      );
    notice(`data: read from tokenized_path ${c.tokenized_path}; the other data settings are ignored`);
    const template = resolveTemplate(c.template, tokenizer, c.stage);
    return { ...saved.data, template, tokenizer, fromCache: true, inputs: saved.inputs };
  }
  const prepared = await prepareFromDatasets(c, tok);
  if (c.tokenized_path) {
    const { train, eval: evalSet, problems, stats, inputs } = prepared;
    const file = writeTokenizedFolder(c.tokenized_path, { data: { train, eval: evalSet, problems, stats }, inputs });
    notice(`data: tokenized data saved to ${file}; later runs with tokenized_path: ${c.tokenized_path} read it`);
  }
  return prepared;
}

async function prepareFromDatasets(c: TrainConfig, tok?: TextTokenizer): Promise<PreparedData> {
  if (!c.dataset?.length)
    throw new LmfError('bad_value', 'dataset is required', {
      key: 'dataset',
      hint: 'name datasets from dataset_info.json, e.g. dataset: identity',
    });
  const tokenizer = tok ?? HfTokenizer.fromDir(c.model_name_or_path);
  const template = resolveTemplate(c.template, tokenizer, c.stage);
  const kind = stageKind(c.stage);
  const catalogue = await catalogueDir(c.dataset_dir);
  const resolved = resolveDatasets([...c.dataset, ...(c.eval_dataset ?? [])], catalogue);
  await fetchHubFiles(resolved);
  const attrs = new Map(resolved.map((a) => [a.name, a]));
  const templateId = templateFingerprint(template, tokenizer);
  const inputs = dataInputs(
    catalogue,
    [...attrs.values()].flatMap((a) => a.files ?? [a.path]),
    tokenizer instanceof HfTokenizer ? tokenizer.dir : null,
  );
  const key = cacheKey(c, inputs, templateId);
  const cached = key && !c.overwrite_cache ? readCache(key) : null;
  if (cached) return { ...cached, template, tokenizer, fromCache: true, inputs };
  const rng = new Rng(c.seed);
  const problems: RowProblem[] = [];
  const counts = { read: 0 };
  const load = (names: string[]) =>
    loadMixed(
      names.map((n) => attrs.get(n)!),
      kind,
      c,
      rng,
      problems,
      counts,
    );
  let trainItems = await load(c.dataset);
  let evalItems: AlignedExample[] = [];
  if (c.eval_dataset?.length) {
    if (c.val_size)
      throw new LmfError('bad_value', 'val_size and eval_dataset cannot be used together', { key: 'val_size' });
    evalItems = await load(c.eval_dataset);
  } else {
    [trainItems, evalItems] = splitValidation(trainItems, c.val_size, rng);
  }
  const stats: DataStats = {
    rowsRead: counts.read,
    rowsDropped: problems.length,
    examples: 0,
    truncated: 0,
    noTarget: 0,
    lengths: [],
  };
  const train = await processAll(kind, trainItems, template, tokenizer, c, stats);
  if (sizeOf(train) === 0) {
    throw new LmfError('no_examples', 'no valid example is left after checking the data', {
      hint: problems.length
        ? `first problem: ${problems[0].file}:${problems[0].row}: ${problems[0].message}`
        : 'check the dataset format (see data/README.md)',
    });
  }
  stats.examples = sizeOf(train);
  stats.lengths = lengthsOf(train);
  const evalSet = evalItems.length ? await processAll(kind, evalItems, template, tokenizer, c) : null;
  if (key) writeCache(key, { train, eval: evalSet, problems, stats });
  return { train, eval: evalSet, problems, stats, template, tokenizer, fromCache: false, inputs };
}
