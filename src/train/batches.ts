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

/** The same seeded per-epoch order over any units, collated into batches by the caller. */
export function planUnits<U, B>(
  units: U[],
  batchSize: number,
  seed: number,
  collate: (items: U[]) => B,
): { epoch(e: number): B[]; batchesPerEpoch: number } {
  return {
    batchesPerEpoch: Math.ceil(units.length / batchSize),
    epoch(e: number): B[] {
      const order = new Rng(seed * 1000003 + e).shuffle(Array.from({ length: units.length }, (_, i) => i));
      const out: B[] = [];
      for (let b = 0; b < order.length; b += batchSize)
        out.push(collate(order.slice(b, b + batchSize).map((i) => units[i])));
      return out;
    },
  };
}

export function planBatches(
  examples: Encoded[],
  batchSize: number,
  seed: number,
  padId: number,
  packing: { cutoffLen: number } | null,
): BatchPlan {
  // packed rows are built once (the packing is deterministic); their order is shuffled per epoch
  if (packing) return planUnits(packRows(examples, packing.cutoffLen, padId), batchSize, seed, stackRows);
  return planUnits(examples, batchSize, seed, (items) => padBatch(items, padId));
}
