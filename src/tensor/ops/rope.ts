/**
 * rope: rotary position embedding, Hugging Face's rotate-half convention, on x [tokens, heads * headDim]
 * with one position per token (positions restart per packed sequence). The backward is the inverse rotation.
 */
import { native } from '../../native.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import { exampleInts, type OpSpec } from './spec.js';

export interface RopeTables {
  positions: Tensor<'i32'>;
  invFreq: Tensor<'f32'>;
}

export function rope(x: Tensor<'f32'>, tables: RopeTables, heads: number, headDim: number): Tensor<'f32'> {
  const tokens = tables.positions.size;
  if (x.size !== tokens * heads * headDim || tables.invFreq.size !== headDim / 2) {
    throw new Error(`rope: input [${x.shape}] does not match ${tokens} tokens × ${heads} heads × ${headDim}`);
  }
  const out = Tensor.empty(x.shape, 'f32');
  out.data.set(x.data);
  native.rope(out.data, tables.positions.data, tables.invFreq.data, tokens, heads, headDim, false);
  return record(out, 'rope', [x], (g) => {
    const dx = Tensor.empty(x.shape, 'f32');
    dx.data.set(g.data);
    native.rope(dx.data, tables.positions.data, tables.invFreq.data, tokens, heads, headDim, true);
    return [dx];
  });
}

const examplePositions = exampleInts(4, 50);
const exampleInvFreq = [1, 0.1];

export const ropeSpec: OpSpec = {
  inputs: [[4, 2 * 4]],
  apply: ([x]) => rope(x, {
    positions: Tensor.from(examplePositions, [4], 'i32'),
    invFreq: Tensor.from(exampleInvFreq, [2], 'f32'),
  }, 2, 4),
  reference([x]) {
    const y = new Float64Array(x.length), D = 4, half = 2;
    for (let t = 0; t < 4; t++) {
      for (let h = 0; h < 2; h++) {
        const o = (t * 2 + h) * D;
        for (let j = 0; j < half; j++) {
          const a = Math.fround(examplePositions[t] * Math.fround(exampleInvFreq[j]));
          const c = Math.cos(a), s = Math.sin(a);
          y[o + j] = x[o + j] * c - x[o + j + half] * s;
          y[o + j + half] = x[o + j + half] * c + x[o + j] * s;
        }
      }
    }
    return y;
  },
};
