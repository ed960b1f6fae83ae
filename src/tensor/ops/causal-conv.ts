/**
 * causalConvSilu: silu of a causal depthwise convolution over time, per channel of [B*T, C] with weights [C, 1, K]
 * (Hugging Face's Conv1d with groups = channels, no bias, its output cut to the input's length): Gated DeltaNet's
 * short convolution over q|k|v. A token sees the K-1 tokens before it in its own segment only (packed sequences;
 * padding is segment 0).
 */
import { native } from '../../native.js';
import { gradTarget, record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';

export interface ConvShape {
  batch: number;
  seq: number;
  segments?: Tensor<'i32'> | null;
}

export function causalConvSilu(x: Tensor<'f32'>, w: Tensor<'f32'>, s: ConvShape): Tensor<'f32'> {
  const C = x.shape[x.shape.length - 1];
  const K = w.size / C;
  if (!Number.isInteger(K) || w.shape[0] !== C)
    throw new Error(`causalConvSilu: weight [${w.shape}] does not fit ${C} channels`);
  if (x.size !== s.batch * s.seq * C)
    throw new Error(`causalConvSilu: input [${x.shape}] is not ${s.batch}×${s.seq} rows`);
  const seg = s.segments?.data ?? null;
  const out = Tensor.empty(x.shape, 'f32');
  native.causalConvSiluForward(x.data, w.data, out.data, s.batch, s.seq, C, K, seg, null);
  return record(out, 'causalConvSilu', [x, w], (g, needs) => {
    const dx = Tensor.empty(x.shape, 'f32');
    const dw = needs[1] ? gradTarget(w) : null;
    const scratch = dw ? null : Tensor.zeros([C * K], 'f32');
    native.causalConvSiluBackward(
      x.data,
      w.data,
      g.data,
      dx.data,
      (dw?.grad ?? scratch!).data,
      s.batch,
      s.seq,
      C,
      K,
      seg,
    );
    scratch?.dispose();
    if (!needs[0]) dx.dispose();
    return [needs[0] ? dx : null, dw?.result ?? null];
  });
}

/** One sequence's next tokens after `history` (its K-1 latest inputs, oldest first): generation's form. */
export function causalConvSiluAfter(x: Tensor<'f32'>, w: Tensor<'f32'>, history: Float32Array): Tensor<'f32'> {
  const C = x.shape[x.shape.length - 1];
  const out = Tensor.empty(x.shape, 'f32');
  native.causalConvSiluForward(x.data, w.data, out.data, 1, x.size / C, C, w.size / C, null, history);
  return out;
}

const example = { batch: 2, seq: 5, C: 3, K: 4, segments: [1, 1, 1, 1, 1, 0, 1, 1, 2, 2] };

export const causalConvSiluSpec: OpSpec = {
  inputs: [
    [example.batch * example.seq, example.C],
    [example.C, 1, example.K],
  ],
  apply: ([x, w]) =>
    causalConvSilu(x, w, {
      batch: example.batch,
      seq: example.seq,
      segments: Tensor.from(example.segments, [10], 'i32'),
    }),
  reference([x, w]) {
    const { batch, seq, C, K, segments } = example;
    const y = new Float64Array(x.length);
    for (let b = 0; b < batch; b++)
      for (let t = 0; t < seq; t++)
        for (let c = 0; c < C; c++) {
          let z = 0;
          for (let k = 0; k < K; k++) {
            const s = t - (K - 1) + k;
            // the window stops at the start of the row or of the segment
            let visible = s >= 0;
            for (let u = s + 1; visible && u <= t; u++) visible = segments[b * seq + u] === segments[b * seq + u - 1];
            if (visible) z += w[c * K + k] * x[(b * seq + s) * C + c];
          }
          y[(b * seq + t) * C + c] = z / (1 + Math.exp(-z));
        }
    return y;
  },
};
