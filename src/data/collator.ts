/**
 * Batches for the model: padding to the longest example (rounded up to a multiple of 8), or packing several
 * examples into rows of cutoff_len. Packed rows carry per-sequence positions (restarting at 0) and segment
 * ids, so attention never crosses from one packed sequence into another.
 */
import { IGNORE, type Encoded } from './processors/common.js';
import { maxOf } from '../util/arrays.js';

export interface TokenBatch {
  ids: Int32Array;
  /** unshifted labels [B, T]; IGNORE where no loss is taken */
  labels: Int32Array;
  batch: number;
  seq: number;
  positions?: Int32Array;
  /** segment id per token (0 = padding) when rows hold several sequences */
  segments?: Int32Array;
}

export function padBatch(examples: Encoded[], padId: number, multipleOf = 8): TokenBatch {
  const longest = maxOf(
    examples.map((e) => e.ids.length),
    1,
  );
  const seq = Math.ceil(longest / multipleOf) * multipleOf;
  const B = examples.length;
  const ids = new Int32Array(B * seq).fill(padId);
  const labels = new Int32Array(B * seq).fill(IGNORE);
  examples.forEach((e, b) => {
    ids.set(e.ids, b * seq);
    labels.set(e.labels, b * seq);
  });
  return { ids, labels, batch: B, seq };
}

/**
 * Groups example lengths into bins of at most `capacity` tokens (LLaMA-Factory's greedy knapsack: take the
 * longest that still fits until nothing does, then open a new bin). Returns example indices per bin.
 */
export function knapsack(lengths: number[], capacity: number): number[][] {
  const order = lengths
    .map((len, i) => ({ len, i }))
    .filter((x) => x.len <= capacity)
    .sort((a, b) => a.len - b.len);
  const bins: number[][] = [];
  while (order.length) {
    const bin: number[] = [];
    let room = capacity;
    for (;;) {
      // largest length <= room (binary search over the ascending order)
      let lo = 0,
        hi = order.length - 1,
        found = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (order[mid].len <= room) {
          found = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      if (found === -1) break;
      room -= order[found].len;
      bin.push(order[found].i);
      order.splice(found, 1);
    }
    bins.push(bin);
  }
  return bins;
}

/** Packed rows of cutoffLen tokens. Examples longer than cutoffLen are left out (counted by the caller). */
export function packRows(examples: Encoded[], cutoffLen: number, padId: number): TokenBatch[] {
  return knapsack(
    examples.map((e) => e.ids.length),
    cutoffLen,
  ).map((bin) => {
    const ids = new Int32Array(cutoffLen).fill(padId);
    const labels = new Int32Array(cutoffLen).fill(IGNORE);
    const positions = new Int32Array(cutoffLen);
    const segments = new Int32Array(cutoffLen);
    let at = 0;
    bin.forEach((idx, s) => {
      const e = examples[idx];
      ids.set(e.ids, at);
      labels.set(e.labels, at);
      for (let k = 0; k < e.ids.length; k++) {
        positions[at + k] = k;
        segments[at + k] = s + 1;
      }
      at += e.ids.length;
    });
    for (let k = at; k < cutoffLen; k++) positions[k] = k - at;
    return { ids, labels, batch: 1, seq: cutoffLen, positions, segments };
  });
}

/** Stacks single rows of equal length into one batch. */
export function stackRows(rows: TokenBatch[]): TokenBatch {
  const seq = rows[0].seq;
  const B = rows.length;
  const cat = (pick: (r: TokenBatch) => Int32Array | undefined) => {
    if (!rows.every((r) => pick(r))) return undefined;
    const out = new Int32Array(B * seq);
    rows.forEach((r, b) => out.set(pick(r)!, b * seq));
    return out;
  };
  return {
    ids: cat((r) => r.ids)!,
    labels: cat((r) => r.labels)!,
    batch: B,
    seq,
    positions: cat((r) => r.positions),
    segments: cat((r) => r.segments),
  };
}
