/**
 * attention: causal grouped-query attention over q [B*T, H*D], k and v [B*T, KV*D] (the projections'
 * own layout), softmax(q k^T * scale) v per head (scale 1/sqrt(D) unless the family sets its own). Tokens with
 * different segment ids never see each other (packed sequences, padding); a sliding window hides keys `window`
 * or more positions back; a softcap passes scores through softcap * tanh(score / softcap). Tiled in native code; the T×T matrix is never stored and the backward
 * recomputes it from the saved log-sum-exp.
 */
import { native } from '../../native.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';
import { maxOf } from '../../util/arrays.js';

export interface AttentionShape {
  batch: number;
  seq: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** [B*T] segment id per token; null means one causal sequence per row. */
  segments?: Tensor<'i32'> | null;
  /** scores are q·k times this; default 1/sqrt(headDim) */
  scale?: number;
  /** sliding window: a query sees the `window` most recent positions, itself included; null = all */
  window?: number | null;
  /** Gemma 2's attention logit soft-capping; null = none */
  softcap?: number | null;
  /**
   * a bf16 model's attention: its products (not decoding's few queries) on operands rounded to bf16, as its
   * matmuls, where the CPU has bf16 dot products; f32 elsewhere, as bf16 matmuls widen there
   */
  bf16?: boolean;
}

/** The kernel's last four arguments: scale, window (0 = none), softcap (0 = none), bf16. */
export function attentionOptions(s: Pick<AttentionShape, 'scale' | 'window' | 'softcap' | 'headDim' | 'bf16'>) {
  return [s.scale ?? 1 / Math.sqrt(s.headDim), s.window ?? 0, s.softcap ?? 0, s.bf16 ?? false] as const;
}

/** What attention's forward pass leaves for its backward: the output and the log-sum-exp of every score row. */
export interface AttentionResult {
  out: Tensor<'f32'>;
  lse: Tensor<'f32'>;
}

export function attention(q: Tensor<'f32'>, k: Tensor<'f32'>, v: Tensor<'f32'>, s: AttentionShape): Tensor<'f32'> {
  return attentionFromSaved(q, k, v, s, attentionForward(q, k, v, s));
}

/** The forward pass alone (nothing recorded): output and log-sum-exp, for a backward that comes later. */
export function attentionForward(
  q: Tensor<'f32'>,
  k: Tensor<'f32'>,
  v: Tensor<'f32'>,
  s: AttentionShape,
): AttentionResult {
  const { batch: B, seq: T, heads: H, kvHeads: KV, headDim: D } = s;
  if (q.size !== B * T * H * D || k.size !== B * T * KV * D || v.size !== k.size || H % KV !== 0) {
    throw new Error(
      `attention: q [${q.shape}], k [${k.shape}], v [${v.shape}] do not match B=${B} T=${T} H=${H} KV=${KV} D=${D}`,
    );
  }
  const seg = s.segments?.data ?? null;
  const [scale, window, softcap, bf16] = attentionOptions(s);
  const out = Tensor.empty(q.shape, 'f32');
  const lse = Tensor.empty([B, H, T], 'f32');
  native.attentionForward(
    q.data,
    k.data,
    v.data,
    out.data,
    lse.data,
    B,
    T,
    T,
    H,
    KV,
    D,
    0,
    seg,
    seg,
    scale,
    window,
    softcap,
    bf16,
  );
  return { out, lse };
}

/**
 * Attention whose forward pass was already run on these q, k, v (gradient checkpointing recomputes a layer
 * but not its attention): records the backward from the saved output and log-sum-exp.
 */
export function attentionFromSaved(
  q: Tensor<'f32'>,
  k: Tensor<'f32'>,
  v: Tensor<'f32'>,
  s: AttentionShape,
  saved: AttentionResult,
): Tensor<'f32'> {
  const { batch: B, seq: T, heads: H, kvHeads: KV, headDim: D } = s;
  const seg = s.segments?.data ?? null;
  const [scale, window, softcap, bf16] = attentionOptions(s);
  const { out, lse } = saved;
  return record(out, 'attention', [q, k, v], (g, needs) => {
    const dq = Tensor.empty(q.shape, 'f32');
    const dk = Tensor.empty(k.shape, 'f32');
    const dv = Tensor.empty(v.shape, 'f32');
    native.attentionBackward(
      q.data,
      k.data,
      v.data,
      out.data,
      g.data,
      lse.data,
      dq.data,
      dk.data,
      dv.data,
      B,
      T,
      T,
      H,
      KV,
      D,
      0,
      seg,
      seg,
      scale,
      window,
      softcap,
      bf16,
    );
    return [needs[0] ? dq : null, needs[1] ? dk : null, needs[2] ? dv : null];
  });
}

/** Plain reference: full score matrix, masked softmax. */
export function attentionReference(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  s: AttentionShape,
  segments: ArrayLike<number> | null,
): Float64Array {
  const { batch: B, seq: T, heads: H, kvHeads: KV, headDim: D } = s;
  const [scale, window, softcap] = attentionOptions(s);
  const out = new Float64Array(q.length);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / KV));
      for (let i = 0; i < T; i++) {
        const visible: number[] = [];
        const scores: number[] = [];
        for (let j = 0; j <= i; j++) {
          if (segments && segments[b * T + i] !== segments[b * T + j]) continue;
          if (window > 0 && i - j >= window) continue;
          let d = 0;
          for (let c = 0; c < D; c++) d += q[((b * T + i) * H + h) * D + c] * k[((b * T + j) * KV + g) * D + c];
          visible.push(j);
          scores.push(softcap > 0 ? softcap * Math.tanh((d * scale) / softcap) : d * scale);
        }
        const mx = maxOf(scores);
        const sum = scores.reduce((a, x) => a + Math.exp(x - mx), 0);
        visible.forEach((j, n) => {
          const p = Math.exp(scores[n] - mx) / sum;
          for (let c = 0; c < D; c++) out[((b * T + i) * H + h) * D + c] += p * v[((b * T + j) * KV + g) * D + c];
        });
      }
    }
  }
  return out;
}

const exampleShape = { batch: 2, seq: 5, heads: 4, kvHeads: 2, headDim: 4, scale: 0.3, window: 3, softcap: 2 };
const exampleSegments = [1, 1, 2, 2, 2, 1, 1, 1, 1, 0];

export const attentionSpec: OpSpec = {
  inputs: [
    [10, 16],
    [10, 8],
    [10, 8],
  ],
  apply: ([q, k, v]) => attention(q, k, v, { ...exampleShape, segments: Tensor.from(exampleSegments, [10], 'i32') }),
  reference: ([q, k, v]) => attentionReference(q, k, v, exampleShape, exampleSegments),
};
