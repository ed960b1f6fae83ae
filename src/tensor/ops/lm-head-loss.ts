/**
 * Output projection fused with cross-entropy: logits = x · W^T are made a few hundred tokens at a time,
 * so training never holds the logits of the whole batch.
 *
 * lmHeadLoss: loss = sum_t weight[t] * CE(x_t W^T, target_t), a scalar. Its gradient is computed in the
 *   same native pass as the loss (one logits computation, not two); backward scales it by the upstream
 *   gradient. Targets are already shifted; target < 0 is ignored.
 * lmHeadLogProbs: log p(target_t) per token [N]; its backward recomputes the logits chunk by chunk
 *   (sequence log-probabilities for preference losses).
 * Both take an optional softcap (Gemma 2's final_logit_softcapping): logits become softcap * tanh(logit / softcap).
 */
import { native } from '../../native.js';
import { gradTarget, isLeaf, leafGrad, needsGrad, record, type Grad } from '../autograd.js';
import { Tensor } from '../tensor.js';
import { matmulWeight } from './linear.js';
import { exampleInts, type OpSpec } from './spec.js';
import { maxOf } from '../../util/arrays.js';

/**
 * Logit rows per chunk: about 128 MiB of logits, at least 16 rows. Where bf16 matmuls are widened to f32 (no bf16
 * dot products) every chunk widens the whole head again: with 32 MiB, Qwen3.5-0.8B's 248k-row head took 11.6 s of a
 * 21.5 s step at sequence 512, with 128 MiB 6.6 s (512 MiB: 6.2 s). The count is a multiple of the matmuls' row
 * bucket (native/src/matmul.cc: 32 up to 512 rows, then 128): any other count is padded with zero rows in every
 * product against the head (135 rows at 248k went as 160: the head's call took 6.1 s, with 128 rows 4.8 s).
 */
export function chunkRows(vocab: number): number {
  const rows = Math.floor((128 * 1024 * 1024) / (4 * vocab));
  const bucket = rows > 512 ? 128 : 32;
  return Math.max(16, rows >= bucket ? rows - (rows % bucket) : rows);
}

function checkShapes(op: string, x: Tensor, w: Tensor, targets: Tensor<'i32'>): [number, number, number] {
  const [V, C] = w.shape;
  const N = x.size / C;
  if (x.shape[x.shape.length - 1] !== C || targets.size !== N) {
    throw new Error(`${op}: x [${x.shape}], weight [${w.shape}] and ${targets.size} targets do not match`);
  }
  return [N, C, V];
}

function scaleInto(g: number, src: Grad, into: Grad): void {
  native.axpby(src.data, into.data, into.data, src.size, g, 1);
}

export function lmHeadLoss(
  x: Tensor<'f32'>,
  w: Tensor,
  targets: Tensor<'i32'>,
  weights: Float32Array,
  softcap: number | null = null,
): Tensor<'f32'> {
  const [N, C, V] = checkShapes('lmHeadLoss', x, w, targets);
  if (weights.length !== N) throw new Error(`lmHeadLoss: ${weights.length} weights for ${N} tokens`);
  const wd = matmulWeight(w);
  const logp = Tensor.empty([N], 'f32');
  const grad = needsGrad([x, w]);
  const dx = grad && x.requiresGrad ? Tensor.empty(x.shape, 'f32') : null;
  const dw = grad && w.requiresGrad ? Tensor.zeros(w.shape, 'f32') : null;
  const rowWeights = grad ? Tensor.from(weights, [N], 'f32') : null;
  native.lmHeadCrossEntropy(
    x.data,
    wd.data,
    targets.data,
    rowWeights?.data ?? null,
    logp.data,
    dx?.data ?? null,
    dw?.data ?? null,
    N,
    C,
    V,
    wd.dtype,
    chunkRows(V),
    softcap ?? 0,
  );
  let loss = 0;
  for (let t = 0; t < N; t++) loss -= weights[t] * logp.data[t];
  const out = Tensor.from([loss], [1], 'f32');
  return record(out, 'lmHeadLoss', [x, w], (g, needs) => {
    const scale = g.data[0];
    let gx: Grad | null = null;
    if (needs[0] && dx) {
      if (scale !== 1) native.axpby(dx.data, null, dx.data, dx.size, scale, 0);
      gx = dx;
    }
    let gw: Grad | null = null;
    if (needs[1] && dw) {
      if (isLeaf(w)) scaleInto(scale, dw, leafGrad(w));
      else {
        if (scale !== 1) native.axpby(dw.data, null, dw.data, dw.size, scale, 0);
        gw = dw;
      }
    }
    return [gx, gw];
  });
}

export function lmHeadLogProbs(
  x: Tensor<'f32'>,
  w: Tensor,
  targets: Tensor<'i32'>,
  softcap: number | null = null,
): Tensor<'f32'> {
  const [N, C, V] = checkShapes('lmHeadLogProbs', x, w, targets);
  const wd = matmulWeight(w);
  const logp = Tensor.empty([N], 'f32');
  native.lmHeadCrossEntropy(
    x.data,
    wd.data,
    targets.data,
    null,
    logp.data,
    null,
    null,
    N,
    C,
    V,
    wd.dtype,
    chunkRows(V),
    softcap ?? 0,
  );
  return record(logp, 'lmHeadLogProbs', [x, w], (g, needs) => {
    // d(sum g*logp) = d(sum (-g) * CE)
    const rowWeights = Tensor.empty([N], 'f32');
    native.axpby(g.data, null, rowWeights.data, N, -1, 0);
    const dx = needs[0] ? Tensor.empty(x.shape, 'f32') : null;
    const dw = needs[1] ? gradTarget(w) : null;
    const scratch = Tensor.empty([N], 'f32');
    native.lmHeadCrossEntropy(
      x.data,
      wd.data,
      targets.data,
      rowWeights.data,
      scratch.data,
      dx?.data ?? null,
      dw?.grad.data ?? null,
      N,
      C,
      V,
      wd.dtype,
      chunkRows(V),
      softcap ?? 0,
    );
    scratch.dispose();
    rowWeights.dispose();
    return [dx, dw?.result ?? null];
  });
}

const exampleTargets = [3, -100, 0, 5, 1];
const exampleWeights = Float32Array.from([0.5, 0, 0.25, 1, 2]);

function referenceLogProbs(
  x: Float64Array,
  w: Float64Array,
  targets: number[],
  C: number,
  V: number,
  softcap = 0,
): Float64Array {
  const out = new Float64Array(targets.length);
  targets.forEach((t, r) => {
    if (t < 0) return;
    const z = Array.from({ length: V }, (_, v) => {
      let s = 0;
      for (let c = 0; c < C; c++) s += x[r * C + c] * w[v * C + c];
      return softcap ? softcap * Math.tanh(s / softcap) : s;
    });
    const mx = maxOf(z);
    const lse = mx + Math.log(z.reduce((a, b) => a + Math.exp(b - mx), 0));
    out[r] = z[t] - lse;
  });
  return out;
}

export const lmHeadLossSpec: OpSpec = {
  inputs: [
    [5, 4],
    [6, 4],
  ],
  apply: ([x, w]) => lmHeadLoss(x, w, Tensor.from(exampleTargets, [5], 'i32'), exampleWeights),
  reference([x, w]) {
    const lp = referenceLogProbs(x, w, exampleTargets, 4, 6);
    return Float64Array.of(-lp.reduce((a, v, i) => a + exampleWeights[i] * v, 0));
  },
};

const logProbTargets = exampleInts(5, 6, 3);

export const lmHeadLogProbsSpec: OpSpec = {
  inputs: [
    [5, 4],
    [6, 4],
  ],
  apply: ([x, w]) => lmHeadLogProbs(x, w, Tensor.from(logProbTargets, [5], 'i32'), 1.5),
  reference: ([x, w]) => referenceLogProbs(x, w, logProbTargets, 4, 6, 1.5),
};
