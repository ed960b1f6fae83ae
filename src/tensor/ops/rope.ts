/**
 * rope: rotary position embedding, Hugging Face's rotate-half convention, on x [tokens, heads * headDim]
 * with one position per token (positions restart per packed sequence). The tables may cover fewer dimensions
 * than a head (partial rotary, Phi-3): the first rotaryDim values of each head turn, the rest pass through. The cos/sin table is made once per
 * batch (ropeTables) and shared by every layer. The backward is the inverse rotation.
 */
import { native } from '../../native.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import { exampleInts, type OpSpec } from './spec.js';

export interface RopeTables {
  tokens: number;
  /** values of each head that turn: twice the number of frequencies */
  rotaryDim: number;
  cos: Tensor<'f32'>;
  sin: Tensor<'f32'>;
}

/** cos and sin of position * inv_freq for each token, [tokens, headDim / 2]. */
export function ropeTables(positions: Tensor<'i32'>, invFreq: Tensor<'f32'>): RopeTables {
  const tokens = positions.size,
    half = invFreq.size;
  const cos = Tensor.empty([tokens, half], 'f32');
  const sin = Tensor.empty([tokens, half], 'f32');
  native.ropeTable(positions.data, invFreq.data, cos.data, sin.data, tokens, half);
  return { tokens, rotaryDim: 2 * half, cos, sin };
}

export function rope(x: Tensor<'f32'>, t: RopeTables, heads: number, headDim = t.rotaryDim): Tensor<'f32'> {
  if (x.size !== t.tokens * heads * headDim || t.rotaryDim > headDim) {
    throw new Error(
      `rope: input [${x.shape}] does not match ${t.tokens} tokens × ${heads} heads × ${headDim} (rotary ${t.rotaryDim})`,
    );
  }
  const out = Tensor.empty(x.shape, 'f32');
  out.data.set(x.data);
  native.rope(out.data, t.cos.data, t.sin.data, t.tokens, heads, headDim, t.rotaryDim, false);
  return record(out, 'rope', [x], (g) => {
    const dx = Tensor.empty(x.shape, 'f32');
    dx.data.set(g.data);
    native.rope(dx.data, t.cos.data, t.sin.data, t.tokens, heads, headDim, t.rotaryDim, true);
    return [dx];
  });
}

const examplePositions = exampleInts(4, 50);
const exampleInvFreq = [1, 0.1];

/** Heads of 6 values of which the first 4 turn: partial rotary covers the full case too. */
export const ropeSpec: OpSpec = {
  inputs: [[4, 2 * 6]],
  apply: ([x]) =>
    rope(x, ropeTables(Tensor.from(examplePositions, [4], 'i32'), Tensor.from(exampleInvFreq, [2], 'f32')), 2, 6),
  reference([x]) {
    const y = Float64Array.from(x),
      D = 6,
      half = 2;
    for (let t = 0; t < 4; t++) {
      for (let h = 0; h < 2; h++) {
        const o = (t * 2 + h) * D;
        for (let j = 0; j < half; j++) {
          const a = Math.fround(examplePositions[t] * Math.fround(exampleInvFreq[j]));
          const c = Math.cos(a),
            s = Math.sin(a);
          y[o + j] = x[o + j] * c - x[o + j + half] * s;
          y[o + j + half] = x[o + j + half] * c + x[o + j] * s;
        }
      }
    }
    return y;
  },
};
