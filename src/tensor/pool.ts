/**
 * A pool of native buffers keyed by byte size. Training steps allocate the same shapes every step; taking
 * a buffer back from the pool costs nothing, while creating a new external ArrayBuffer makes V8 account
 * its bytes and run garbage collections (measured: 50-120 µs per tensor with a few hundred live ones).
 * Disposed tensors return their buffer here; trim() hands pooled buffers back to the system.
 */
import { native } from '../native.js';

const free = new Map<number, ArrayBuffer[]>();
let pooledBytes = 0;
let liveBytes = 0;
let peakBytes = 0;
/** Above this many pooled bytes, released buffers go straight back to the system. */
const poolLimit = 4 * 2 ** 30;

/**
 * Size classes: 64-byte steps up to 64 KiB, then eight steps per doubling (at most 12.5% spare). Inference
 * meets a new length with every prompt; classes let those tensors reuse pooled buffers instead of fresh
 * pages, whose first touch (a page fault per 4 KiB) cost more than the kernels writing them.
 */
function rounded(bytes: number): number {
  if (bytes <= 65536) return Math.max(64, Math.ceil(bytes / 64) * 64);
  const step = 2 ** (Math.floor(Math.log2(bytes)) - 3);
  return Math.ceil(bytes / step) * step;
}

/** A pooled buffer of exactly this class, else of the smallest larger class up to twice the size. */
function pooled(size: number): ArrayBuffer | undefined {
  const exact = free.get(size)?.pop();
  if (exact) return exact;
  let best = Infinity;
  for (const [s, list] of free) if (s > size && s <= 2 * size && s < best && list.length) best = s;
  return best === Infinity ? undefined : free.get(best)!.pop();
}

export function acquire(bytes: number, zero: boolean): ArrayBuffer {
  const reused = pooled(rounded(bytes));
  const size = reused?.byteLength ?? rounded(bytes);
  liveBytes += size;
  peakBytes = Math.max(peakBytes, liveBytes);
  if (reused) {
    pooledBytes -= size;
    if (zero) new Uint8Array(reused, 0, bytes).fill(0);
    return reused;
  }
  return native.alloc(size, zero);
}

export function release(buffer: ArrayBuffer): void {
  const size = buffer.byteLength;
  liveBytes -= size;
  if (pooledBytes + size > poolLimit) {
    native.free(buffer);
    return;
  }
  let list = free.get(size);
  if (!list) free.set(size, (list = []));
  list.push(buffer);
  pooledBytes += size;
}

/** Frees every pooled buffer (after a phase with other shapes, or to measure memory). */
export function trim(): void {
  for (const list of free.values()) for (const b of list) native.free(b);
  free.clear();
  pooledBytes = 0;
}

export interface MemoryStats {
  /** bytes held by live tensors */
  liveBytes: number;
  /** highest liveBytes since the last reset */
  peakBytes: number;
  /** bytes kept for reuse */
  pooledBytes: number;
}

export function memoryStats(resetPeak = false): MemoryStats {
  const s = { liveBytes, peakBytes, pooledBytes };
  if (resetPeak) peakBytes = liveBytes;
  return s;
}
