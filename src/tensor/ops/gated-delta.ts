/**
 * gatedDelta: the gated delta rule of Qwen3.5's Gated DeltaNet layers over convolved q|k|v rows [B*T, 2*Hk*dk +
 * Hv*dv], with the raw beta and decay projections b, a [B*T, Hv] and the per-head A_log and dt_bias [Hv]:
 * q, k L2-normalised (q also times dk^-0.5), beta = sigmoid(b), g = -exp(A_log) softplus(a + dt_bias), and per
 * value head (reading key head h / (Hv/Hk)) S = e^g S; S += k (beta (v - S^T k))^T; o = S^T q. Output [B*T, Hv*dv].
 * A segment (packed sequence, or padding as 0) starts from a zero state. The native kernels run the rule in 64-token
 * chunks, each chunk's tokens solved at once as small matrix products, and keep the state entering every chunk for
 * the backward pass, which recomputes the rest; decoding's few tokens per call go token by token instead
 * (native/src/delta_rule_kernels.h).
 */
import { native } from '../../native.js';
import { gradTarget, needsGrad, record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import type { OpSpec } from './spec.js';

export interface DeltaShape {
  batch: number;
  seq: number;
  keyHeads: number;
  valueHeads: number;
  keyDim: number;
  valueDim: number;
  segments?: Tensor<'i32'> | null;
}

const CHUNK = 64;

/** Channels of the convolved q|k|v rows: q and k of every key head, v of every value head. */
export function deltaChannels(s: Pick<DeltaShape, 'keyHeads' | 'valueHeads' | 'keyDim' | 'valueDim'>): number {
  return 2 * s.keyHeads * s.keyDim + s.valueHeads * s.valueDim;
}

function check(s: DeltaShape, qkv: Tensor<'f32'>, b: Tensor<'f32'>, a: Tensor<'f32'>): void {
  const N = s.batch * s.seq;
  const channels = deltaChannels(s);
  if (qkv.size !== N * channels) throw new Error(`gatedDelta: qkv [${qkv.shape}] is not [${N}, ${channels}]`);
  if (b.size !== N * s.valueHeads || a.size !== N * s.valueHeads)
    throw new Error(`gatedDelta: b [${b.shape}] and a [${a.shape}] must be [${N}, ${s.valueHeads}]`);
}

const dims = (s: DeltaShape) => [s.batch, s.seq, s.keyHeads, s.valueHeads, s.keyDim, s.valueDim] as const;

/**
 * The native forward into `out`, in chunks or token by token: with `checkpoints` (chunked only), the states at
 * chunk starts for a backward pass; with `state` [batch * Hv, dk, dv], the run starts from it and leaves the final
 * state in it (generation).
 */
function forward(
  s: DeltaShape,
  [qkv, b, a, aLog, dtBias]: Tensor<'f32'>[],
  out: Tensor<'f32'>,
  form: { chunked: true; checkpoints: Tensor<'f32'> | null } | { chunked: false },
  state: Float32Array | null,
): void {
  const args = [
    qkv.data,
    b.data,
    a.data,
    aLog.data,
    dtBias.data,
    out.data,
    ...dims(s),
    s.segments?.data ?? null,
  ] as const;
  if (form.chunked) native.gatedDeltaForward(...args, form.checkpoints?.data ?? null, state, state);
  else native.gatedDeltaRecurrent(...args, state, state);
}

export function gatedDelta(
  qkv: Tensor<'f32'>,
  b: Tensor<'f32'>,
  a: Tensor<'f32'>,
  aLog: Tensor<'f32'>,
  dtBias: Tensor<'f32'>,
  s: DeltaShape,
): Tensor<'f32'> {
  check(s, qkv, b, a);
  const N = s.batch * s.seq;
  const seg = s.segments?.data ?? null;
  const out = Tensor.empty([N, s.valueHeads * s.valueDim], 'f32');
  // the states at chunk starts are kept only for a backward pass that will run
  const chunks = Math.ceil(s.seq / CHUNK);
  const checkpoints = needsGrad([qkv, b, a, aLog, dtBias])
    ? Tensor.empty([s.batch * s.valueHeads * chunks * s.keyDim * s.valueDim], 'f32')
    : null;
  forward(s, [qkv, b, a, aLog, dtBias], out, { chunked: true, checkpoints }, null);
  return record(out, 'gatedDelta', [qkv, b, a, aLog, dtBias], (g, needs) => {
    const dqkv = Tensor.empty(qkv.shape, 'f32');
    const db = Tensor.empty(b.shape, 'f32');
    const da = Tensor.empty(a.shape, 'f32');
    const dA = needs[3] ? gradTarget(aLog) : null;
    const dDt = needs[4] ? gradTarget(dtBias) : null;
    const scratch = Tensor.zeros([2 * s.valueHeads], 'f32');
    native.gatedDeltaBackward(
      qkv.data,
      b.data,
      a.data,
      aLog.data,
      dtBias.data,
      g.data,
      checkpoints!.data,
      dqkv.data,
      db.data,
      da.data,
      dA?.grad.data ?? scratch.data.subarray(0, s.valueHeads),
      dDt?.grad.data ?? scratch.data.subarray(s.valueHeads),
      ...dims(s),
      seg,
    );
    scratch.dispose();
    const keep = <T extends Tensor>(t: T, i: number) => (needs[i] ? t : (t.dispose(), null));
    return [keep(dqkv, 0), keep(db, 1), keep(da, 2), dA?.result ?? null, dDt?.result ?? null];
  });
}

/**
 * Generation's form: one sequence (batch 1, no segments) continued from `state` [Hv, dk, dv], which is updated
 * in place to the state after these tokens: token by token when they are fewer than a chunk (decoding), else in
 * chunks (a prompt). No gradient.
 */
export function gatedDeltaAfter(
  qkv: Tensor<'f32'>,
  b: Tensor<'f32'>,
  a: Tensor<'f32'>,
  aLog: Tensor<'f32'>,
  dtBias: Tensor<'f32'>,
  s: Omit<DeltaShape, 'batch' | 'seq' | 'segments'>,
  state: Float32Array,
): Tensor<'f32'> {
  const seq = b.size / s.valueHeads;
  const shape = { ...s, batch: 1, seq };
  check(shape, qkv, b, a);
  const out = Tensor.empty([seq, s.valueHeads * s.valueDim], 'f32');
  const form = seq < CHUNK ? { chunked: false as const } : { chunked: true as const, checkpoints: null };
  forward(shape, [qkv, b, a, aLog, dtBias], out, form, state);
  return out;
}

// two rows past one chunk, the second with a segment boundary; more value heads than key heads, dk != dv
const example = {
  batch: 2,
  seq: 70,
  keyHeads: 1,
  valueHeads: 2,
  keyDim: 3,
  valueDim: 2,
  segments: Array.from({ length: 140 }, (_, i) => (i < 70 || i % 70 < 40 ? 1 : 2)),
};
const exampleChannels = deltaChannels(example);

/** The rule token by token in double precision, written for clarity. */
export function gatedDeltaReference(
  [qkv, b, a, aLog, dtBias]: Float64Array[],
  shape: Omit<DeltaShape, 'segments'> & { segments: ArrayLike<number> },
): Float64Array {
  const { batch, seq, keyHeads: Hk, valueHeads: Hv, keyDim: dk, valueDim: dv, segments } = shape;
  const C = deltaChannels(shape);
  const out = new Float64Array(batch * seq * Hv * dv);
  const normalised = (x: Float64Array, scale: number) => {
    const r = 1 / Math.sqrt(x.reduce((acc, v) => acc + v * v, 0) + 1e-6);
    return x.map((v) => v * r * scale);
  };
  for (let bi = 0; bi < batch; bi++)
    for (let h = 0; h < Hv; h++) {
      const kh = Math.floor(h / (Hv / Hk));
      let S = Array.from({ length: dk }, () => new Float64Array(dv));
      for (let t = 0; t < seq; t++) {
        const row = bi * seq + t;
        if (t > 0 && segments[row] !== segments[row - 1]) S = Array.from({ length: dk }, () => new Float64Array(dv));
        const q = normalised(qkv.slice(row * C + kh * dk, row * C + (kh + 1) * dk), 1 / Math.sqrt(dk));
        const k = normalised(qkv.slice(row * C + (Hk + kh) * dk, row * C + (Hk + kh + 1) * dk), 1);
        const v = qkv.slice(row * C + 2 * Hk * dk + h * dv, row * C + 2 * Hk * dk + (h + 1) * dv);
        const beta = 1 / (1 + Math.exp(-b[row * Hv + h]));
        const g = -Math.exp(aLog[h]) * Math.log1p(Math.exp(a[row * Hv + h] + dtBias[h]));
        for (const r of S) for (let j = 0; j < dv; j++) r[j] *= Math.exp(g);
        for (let j = 0; j < dv; j++) {
          let recalled = 0;
          for (let i = 0; i < dk; i++) recalled += S[i][j] * k[i];
          const delta = beta * (v[j] - recalled);
          for (let i = 0; i < dk; i++) S[i][j] += k[i] * delta;
        }
        for (let j = 0; j < dv; j++) {
          let o = 0;
          for (let i = 0; i < dk; i++) o += S[i][j] * q[i];
          out[row * Hv * dv + h * dv + j] = o;
        }
      }
    }
  return out;
}

export const gatedDeltaSpec: OpSpec = {
  inputs: [
    [example.batch * example.seq, exampleChannels],
    [example.batch * example.seq, example.valueHeads],
    [example.batch * example.seq, example.valueHeads],
    [example.valueHeads],
    [example.valueHeads],
  ],
  apply: ([qkv, b, a, aLog, dtBias]) =>
    gatedDelta(qkv, b, a, aLog, dtBias, { ...example, segments: Tensor.from(example.segments, [140], 'i32') }),
  reference: (inputs) => gatedDeltaReference(inputs, example),
};
