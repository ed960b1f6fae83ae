/**
 * columns: out = x[:, start : start + width] of a [rows, features] tensor, copied: the q, k and v (or gate and
 * up) parts of a fused projection (Phi-3's qkv_proj and gate_up_proj). With `group`, the features are groups of
 * that many and the slice is taken from each group: Qwen3.5's q_proj holds [query, gate] per head.
 */
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';

export function columns(x: Tensor<'f32'>, start: number, width: number, group?: number): Tensor<'f32'> {
  const features = x.shape[x.shape.length - 1];
  const F = group ?? features;
  if (start < 0 || width <= 0 || start + width > F || features % F !== 0) {
    throw new Error(`columns: [${start}, ${start + width}) is outside the groups of ${F} of [${x.shape}]`);
  }
  const rows = x.size / F;
  const out = Tensor.empty([x.size / features, (features / F) * width], 'f32');
  for (let r = 0; r < rows; r++) out.data.set(x.data.subarray(r * F + start, r * F + start + width), r * width);
  return record(out, 'columns', [x], (g) => {
    const dx = Tensor.zeros(x.shape, 'f32');
    for (let r = 0; r < rows; r++) dx.data.set(g.data.subarray(r * width, (r + 1) * width), r * F + start);
    return [dx];
  });
}

export const columnsSpec: OpSpec = {
  inputs: [[3, 7]],
  apply: ([x]) => columns(x, 2, 4),
  reference: ([x]) => Float64Array.from({ length: 12 }, (_, i) => x[Math.floor(i / 4) * 7 + 2 + (i % 4)]),
};

export const groupedColumnsSpec: OpSpec = {
  inputs: [[3, 8]],
  apply: ([x]) => columns(x, 1, 2, 4),
  reference: ([x]) => Float64Array.from({ length: 12 }, (_, i) => x[Math.floor(i / 2) * 4 + 1 + (i % 2)]),
};
