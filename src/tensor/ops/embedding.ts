/** embedding: rows of a table [V, C] gathered by token id; the padding row gets no gradient (as nn.Embedding). */
import { native, NativeDType } from '../../native.js';
import { gradTarget, record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import { exampleInts, type OpSpec } from './spec.js';

export function embedding(table: Tensor, ids: Tensor<'i32'>, paddingIdx = -1): Tensor<'f32'> {
  const C = table.shape[1];
  if (table.dtype === 'i32') throw new Error('embedding: the table must be f32 or bf16');
  const n = ids.size;
  const out = Tensor.empty([n, C], 'f32');
  native.embeddingForward(
    ids.data,
    table.data as Float32Array | Uint16Array,
    out.data,
    n,
    C,
    table.dtype === 'bf16' ? NativeDType.bf16 : NativeDType.f32,
  );
  return record(out, 'embedding', [table], (g) => {
    const dt = gradTarget(table);
    native.embeddingBackward(ids.data, g.data, dt.grad.data, n, C, paddingIdx);
    return [dt.result];
  });
}

const exampleIds = exampleInts(6, 4);

export const embeddingSpec: OpSpec = {
  inputs: [[4, 3]],
  apply: ([t]) => embedding(t, Tensor.from(exampleIds, [6], 'i32'), 2),
  reference([t]) {
    const y = new Float64Array(6 * 3);
    exampleIds.forEach((id, i) => y.set(t.subarray(id * 3, id * 3 + 3), i * 3));
    return y;
  },
};
