/**
 * The order of training batches: each epoch shuffles the examples with a generator seeded by (seed, epoch),
 * so a run resumed at any step rebuilds exactly the batches it would have seen.
 */
import { packRows, padBatch, stackRows, type TokenBatch } from '../data/collator.js';
import type { Encoded } from '../data/processors/common.js';
import { Rng } from '../tensor/random.js';

export interface BatchPlan {
  /** micro-batches of one epoch, in order */
  epoch(e: number): TokenBatch[];
  batchesPerEpoch: number;
}

export function planBatches(examples: Encoded[], batchSize: number, seed: number, padId: number,
  packing: { cutoffLen: number } | null): BatchPlan {
  // packed rows are built once (the packing is deterministic); their order is shuffled per epoch
  const rows = packing ? packRows(examples, packing.cutoffLen, padId) : null;
  const units = rows ? rows.length : examples.length;
  const batchesPerEpoch = Math.ceil(units / batchSize);
  return {
    batchesPerEpoch,
    epoch(e: number): TokenBatch[] {
      const order = new Rng(seed * 1000003 + e).shuffle(Array.from({ length: units }, (_, i) => i));
      const out: TokenBatch[] = [];
      for (let b = 0; b < order.length; b += batchSize) {
        const idx = order.slice(b, b + batchSize);
        out.push(rows ? stackRows(idx.map((i) => rows[i])) : padBatch(idx.map((i) => examples[i]), padId));
      }
      return out;
    },
  };
}
