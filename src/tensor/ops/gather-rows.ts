/** gatherRows: out[i] = x[rows[i]] for x [N, C] (e.g. each sequence's last token); the backward scatters back. */
import { native } from '../../native.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';

export function gatherRows(x: Tensor<'f32'>, rows: readonly number[]): Tensor<'f32'> {
  const C = x.shape[x.shape.length - 1];
  const N = x.size / C;
  if (rows.some((r) => !(r >= 0 && r < N))) throw new Error(`gatherRows: a row index is outside 0..${N - 1}`);
  const out = Tensor.empty([rows.length, C], 'f32');
  rows.forEach((r, i) => out.data.set(x.data.subarray(r * C, (r + 1) * C), i * C));
  return record(out, 'gatherRows', [x], (g) => {
    const dx = Tensor.zeros(x.shape, 'f32');
    rows.forEach((r, i) => {
      const dst = dx.data.subarray(r * C, (r + 1) * C);
      native.axpby(g.data.subarray(i * C, (i + 1) * C), dst, dst, C, 1, 1);
    });
    return [dx];
  });
}

const exampleRows = [2, 0, 2];

export const gatherRowsSpec: OpSpec = {
  inputs: [[4, 3]],
  apply: ([x]) => gatherRows(x, exampleRows),
  reference: ([x]) => Float64Array.from(exampleRows.flatMap((r) => Array.from(x.subarray(r * 3, r * 3 + 3)))),
};
