/** Batches of answer pairs (rm, dpo): chosen rows, then rejected rows, through the model in one batch. */
import type { TrainConfig } from '../../config/schema.js';
import { padBatch, type TokenBatch } from '../../data/collator.js';
import type { ProcessedSet } from '../../data/pipeline.js';
import type { EncodedPair } from '../../data/processors/pairwise.js';
import { LmfError } from '../../errors.js';
import { shiftLabels } from '../../models/decoder.js';
import { planUnits } from '../batches.js';

export interface PairBatch {
  input: TokenBatch;
  targets: Int32Array;
  pairs: number;
  /** real tokens per row, chosen rows then rejected */
  lengths: number[];
}

export function collatePairs(pairs: EncodedPair[], padId: number): PairBatch {
  const rows = [...pairs.map((p) => p.chosen), ...pairs.map((p) => p.rejected)];
  const input = padBatch(rows, padId);
  return {
    input,
    targets: shiftLabels(input.labels, input.batch, input.seq),
    pairs: pairs.length,
    lengths: rows.map((r) => r.ids.length),
  };
}

export function planPairs(
  set: ProcessedSet,
  batchSize: number,
  c: TrainConfig,
  padId: number,
): { batchesPerEpoch: number; epoch(e: number): PairBatch[] } {
  if (set.kind !== 'pairwise') throw new LmfError('internal', `stage ${c.stage} needs pairwise data, not ${set.kind}`);
  return planUnits(set.pairs, batchSize, c.seed, (p) => collatePairs(p, padId));
}

export function pairEvalBatches(evalSet: ProcessedSet, c: TrainConfig, padId: number): PairBatch[] {
  return planPairs(evalSet, c.per_device_eval_batch_size, c, padId).epoch(0);
}
