/**
 * Keys and values of one sequence's past tokens, per layer, so each new token costs one row of work instead
 * of the whole sequence. Rows are [KV*D] in the projections' own layout, which the attention kernel reads
 * directly (a cache of one sequence is a [1, T, KV, D] tensor). Plain JS memory, grown by doubling.
 * Linear-attention layers (Qwen3.5's Gated DeltaNet) keep a fixed-size recurrent state instead, which cannot be
 * rewound: truncating such a cache to fewer tokens empties it.
 */
import { native } from '../native.js';
import type { Tensor } from '../tensor/tensor.js';
import { attentionOptions, type AttentionShape } from '../tensor/ops/attention.js';
import type { DeltaNetState } from './gated-deltanet.js';

/** The layer's attention settings: head size, score scale, sliding window, softcap, bf16 products. */
export type CachedAttention = Pick<AttentionShape, 'headDim' | 'scale' | 'window' | 'softcap' | 'bf16'>;

export class KvCache {
  /** tokens stored */
  length = 0;
  private capacity: number;
  private readonly keys: Float32Array[];
  private readonly values: Float32Array[];

  constructor(
    readonly layers: number,
    readonly rowSize: number,
    /** per layer: the recurrent state of a linear-attention layer, null for an attention layer (default: none) */
    private readonly states: (DeltaNetState | null)[] = [],
    initialCapacity = 64,
  ) {
    this.capacity = initialCapacity;
    const rows = (l: number) => (states[l] ? 0 : initialCapacity * rowSize);
    this.keys = Array.from({ length: layers }, (_, l) => new Float32Array(rows(l)));
    this.values = Array.from({ length: layers }, (_, l) => new Float32Array(rows(l)));
  }

  /** Whether the cache can be cut back to a prefix (none of its layers keeps a recurrent state). */
  get rewindable(): boolean {
    return !this.states.some((s) => s);
  }

  /** The recurrent state of linear-attention layer `layer`. */
  deltaState(layer: number): DeltaNetState {
    const state = this.states[layer];
    if (!state) throw new Error(`layer ${layer} has no recurrent state (it is an attention layer)`);
    return state;
  }

  /** Room for n more tokens. */
  reserve(n: number): void {
    if (this.length + n <= this.capacity) return;
    let cap = this.capacity;
    while (cap < this.length + n) cap *= 2;
    for (const list of [this.keys, this.values]) {
      for (let l = 0; l < this.layers; l++) {
        if (this.states[l]) continue;
        const grown = new Float32Array(cap * this.rowSize);
        grown.set(list[l].subarray(0, this.length * this.rowSize));
        list[l] = grown;
      }
    }
    this.capacity = cap;
  }

  /** Layer `layer`'s key and value rows (length tokens, then room to the capacity), for kernels that fill them. */
  rows(layer: number): { keys: Float32Array; values: Float32Array } {
    return { keys: this.keys[layer], values: this.values[layer] };
  }

  /**
   * Stores the n new rows of `k` and `v` (rows [from, from+n) of the step's batch) for `layer` after the
   * cached ones, and computes attention for the matching n query rows of `q` into `out`. The caller
   * advances `length` once every layer is done (commit).
   */
  attend(
    layer: number,
    q: Tensor<'f32'>,
    k: Tensor<'f32'>,
    v: Tensor<'f32'>,
    out: Tensor<'f32'>,
    from: number,
    n: number,
    heads: number,
    options: CachedAttention,
  ): void {
    const headDim = options.headDim;
    const r = this.rowSize,
      qr = heads * headDim;
    this.keys[layer].set(k.data.subarray(from * r, (from + n) * r), this.length * r);
    this.values[layer].set(v.data.subarray(from * r, (from + n) * r), this.length * r);
    const total = this.length + n;
    native.attentionForward(
      q.data.subarray(from * qr, (from + n) * qr),
      this.keys[layer].subarray(0, total * r),
      this.values[layer].subarray(0, total * r),
      out.data.subarray(from * qr, (from + n) * qr),
      null,
      1,
      n,
      total,
      heads,
      r / headDim,
      headDim,
      this.length,
      null,
      null,
      ...attentionOptions(options),
    );
  }

  commit(n: number): void {
    this.length += n;
  }

  /**
   * Keeps the first n tokens (a reused conversation prefix); later rows are overwritten as tokens come. A cache
   * with recurrent states keeps all its tokens or none: callers read `length` afterwards.
   */
  truncate(n: number): void {
    if (n >= this.length) return;
    if (!this.rewindable) {
      this.length = 0;
      for (const s of this.states) {
        s?.conv.fill(0);
        s?.recurrent.fill(0);
      }
      return;
    }
    this.length = n;
  }

  /** Bytes held (for memory reports). */
  get bytes(): number {
    const rows = this.keys.reduce((n, k) => n + k.length, 0) + this.values.reduce((n, v) => n + v.length, 0);
    const states = this.states.reduce((n, s) => n + (s ? s.conv.length + s.recurrent.length : 0), 0);
    return (rows + states) * 4;
  }
}
