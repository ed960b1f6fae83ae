/**
 * rmsnorm: y = w * x / sqrt(mean(x^2) + eps) over groups of w.size values (Hugging Face LlamaRMSNorm, f32 math):
 * the hidden size for a layer's norm, or head_dim across [tokens, heads * head_dim] for Qwen3's and Gemma's
 * q_norm and k_norm.
 */
import { native } from '../../native.js';
import { gradTarget, record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import { affine } from './affine.js';
import type { OpSpec } from './spec.js';

/** What an RMSNorm multiplies by: its weight, or the weight plus an offset (Gemma's 1 + weight). */
export function rmsnormScale(w: Tensor<'f32'>, offset: number): Tensor<'f32'> {
  return offset ? affine(w, 1, offset) : w;
}

export function rmsnorm(x: Tensor<'f32'>, w: Tensor<'f32'>, eps: number): Tensor<'f32'> {
  const C = w.size;
  if (x.shape[x.shape.length - 1] % C !== 0)
    throw new Error(`rmsnorm: input [${x.shape}] does not match weight [${w.shape}]`);
  const rows = x.size / C;
  const out = Tensor.empty(x.shape, 'f32');
  const rstd = Tensor.empty([rows], 'f32');
  native.rmsnormForward(x.data, w.data, out.data, rstd.data, rows, C, eps);
  return record(out, 'rmsnorm', [x, w], (g, needs) => {
    const dx = Tensor.empty(x.shape, 'f32');
    const dw = needs[1] ? gradTarget(w) : null;
    native.rmsnormBackward(g.data, x.data, w.data, rstd.data, dx.data, dw?.grad.data ?? null, rows, C);
    if (!needs[0]) dx.dispose();
    return [needs[0] ? dx : null, dw?.result ?? null];
  });
}

export const rmsnormSpec: OpSpec = {
  inputs: [[3, 8], [8]],
  apply: ([x, w]) => rmsnorm(x, w, 1e-5),
  reference([x, w]) {
    const C = 8,
      y = new Float64Array(x.length);
    for (let r = 0; r < x.length / C; r++) {
      let ss = 0;
      for (let c = 0; c < C; c++) ss += x[r * C + c] ** 2;
      const s = 1 / Math.sqrt(ss / C + 1e-5);
      for (let c = 0; c < C; c++) y[r * C + c] = w[c] * x[r * C + c] * s;
    }
    return y;
  },
};
