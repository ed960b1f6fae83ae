/**
 * `lmf bench matmuls`: the speed of the products of a training step at a model's shapes (oneDNN's, and the packed
 * kernel's where gemm takes it: the f32 input gradients on AVX-512), each product timed on its own (the median of its
 * calls, in rounds: timedRounds) against this machine's measured peak, to decide where a kernel of our own would pay.
 * Per distinct projection [N, K] of the FLOP convention (projectionShapes: q, k, v, o, gate, up, down, or a Gated
 * DeltaNet layer's; fused checkpoints run some of them as one product): the forward y = x Wᵀ, the input gradient
 * dx = dy W and the weight gradient dW = dyᵀ x over the batch's rows; and the LM head's chunk of rows (the
 * cross-entropy kernel's, forward and input gradient). bf16 runs as training does: both operands bf16 where oneDNN
 * has bf16 dot products, else the bf16 weight against f32 activations (widened).
 */
import { type ModelConfig, readModelConfig } from '../models/config.js';
import { presetConfig } from '../models/init.js';
import { presets } from '../models/presets.js';
import { native, NativeDType } from '../native.js';
import { chunkRows } from '../tensor/ops/lm-head-loss.js';
import { onWholeBudget } from '../threads.js';
import { measuredPeak } from './peak.js';
import { projectionShapes } from './projections.js';

export interface MatmulBenchOptions {
  /** preset name or a model folder */
  model: string;
  dtype: 'f32' | 'bf16';
  seq: number;
  batch: number;
  /** timed calls per product (after two untimed ones) */
  reps: number;
}

export interface MatmulRow {
  /** the projections of this shape and the product: forward, input_grad or weight_grad */
  product: string;
  /** C[m, n] = A[m, k] · B[k, n] */
  m: number;
  n: number;
  k: number;
  /** how many times a training step runs it (layers with this projection) */
  per_step: number;
  ms: number;
  gflops: number;
  peak_fraction: number | null;
}

export interface MatmulBenchResult {
  model: string;
  dtype: string;
  rows: number;
  isa: string;
  matmul_isa: string | null;
  threads: number;
  peak_gflops: number | null;
  products: MatmulRow[];
  /** all products of a step together (each row's FLOPs times per_step over its time times per_step) */
  step_peak_fraction: number | null;
}

function configOf(model: string): ModelConfig {
  return model in presets ? presetConfig(model) : readModelConfig(model);
}

interface Product {
  product: string;
  m: number;
  n: number;
  k: number;
  perStep: number;
  run: () => void;
}

/**
 * Median milliseconds of each product over `reps` rounds, after two untimed ones. A round calls every product once,
 * in turn, as a step does: a slow spell of a shared machine then slows them all, not the few timed during it.
 */
function timedRounds(products: Product[], reps: number): number[] {
  for (const p of products) {
    p.run();
    p.run();
  }
  const ms = products.map(() => [] as number[]);
  for (let r = 0; r < reps; r++)
    products.forEach((p, i) => {
      const t0 = performance.now();
      p.run();
      ms[i].push(performance.now() - t0);
    });
  return ms.map((times) => times.sort((a, b) => a - b)[Math.floor(times.length / 2)]);
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

export function runMatmulBench(o: MatmulBenchOptions): MatmulBenchResult {
  const c = configOf(o.model);
  const rows = o.batch * o.seq;
  const { isa, onednnIsa, threads, bf16Matmul } = native.info();
  // the peak before and after the products, the higher: one measurement is short enough for a stall of the VM
  // to halve it
  const peakBefore = measuredPeak(o.dtype);
  // activations as the matmul reads them: bf16 where oneDNN multiplies bf16, else f32 against the bf16 weight
  const bf16Both = o.dtype === 'bf16' && bf16Matmul === 'onednn';
  const dtype = o.dtype === 'f32' ? NativeDType.f32 : bf16Both ? NativeDType.bf16 : NativeDType.f32xbf16;
  const activations = (n: number) => (bf16Both ? new Uint16Array(n).fill(0x3f00) : new Float32Array(n).fill(0.5));
  const weights = (n: number) =>
    o.dtype === 'bf16' ? new Uint16Array(n).fill(0x3e80) : new Float32Array(n).fill(0.25);
  const timed: Product[] = [];
  const add = (product: string, m: number, n: number, k: number, perStep: number, run: () => void) => {
    timed.push({ product, m, n, k, perStep, run });
  };
  for (const p of projectionShapes(c)) {
    const name = p.names.join('/');
    const w = weights(p.n * p.k);
    const x = activations(rows * p.k);
    const dy = activations(rows * p.n);
    const y = new Float32Array(rows * p.n);
    const dx = new Float32Array(rows * p.k);
    add(`${name} forward`, rows, p.n, p.k, p.count, () =>
      native.matmul(x, w, y, rows, p.n, p.k, false, true, false, null, dtype),
    );
    add(`${name} input_grad`, rows, p.k, p.n, p.count, () =>
      native.matmul(dy, w, dx, rows, p.k, p.n, false, false, false, null, dtype),
    );
    // both operands are activations: bf16 only where oneDNN multiplies bf16 (linear.ts: weightGrad)
    const dw = new Float32Array(p.n * p.k);
    add(`${name} weight_grad`, p.n, p.k, rows, p.count, () =>
      native.matmul(dy, x, dw, p.n, p.k, rows, true, false, true, null, bf16Both ? NativeDType.bf16 : NativeDType.f32),
    );
  }
  const V = c.vocabSize,
    C = c.hiddenSize,
    m = Math.min(rows, chunkRows(V));
  const head = weights(V * C);
  const chunks = Math.ceil(rows / m);
  const hx = activations(m * C),
    logits = new Float32Array(m * V),
    dlogits = activations(m * V),
    hdx = new Float32Array(m * C);
  add('lm_head forward', m, V, C, chunks, () =>
    native.matmul(hx, head, logits, m, V, C, false, true, false, null, dtype),
  );
  add('lm_head input_grad', m, C, V, chunks, () =>
    native.matmul(dlogits, head, hdx, m, C, V, false, false, false, null, dtype),
  );
  const medians = onWholeBudget(() => timedRounds(timed, o.reps));
  const peakAfter = measuredPeak(o.dtype);
  const peak = peakBefore === null || peakAfter === null ? null : Math.max(peakBefore, peakAfter);
  const products: MatmulRow[] = timed.map((p, i) => {
    const gflops = (2 * p.m * p.n * p.k) / medians[i] / 1e6;
    return {
      product: p.product,
      m: p.m,
      n: p.n,
      k: p.k,
      per_step: p.perStep,
      ms: round(medians[i], 3),
      gflops: round(gflops, 1),
      peak_fraction: peak === null ? null : round(gflops / peak, 3),
    };
  });
  const flops = products.reduce((s, r) => s + 2 * r.m * r.n * r.k * r.per_step, 0);
  const seconds = products.reduce((s, r) => s + (r.ms / 1000) * r.per_step, 0);
  return {
    model: o.model,
    dtype: o.dtype,
    rows,
    isa,
    matmul_isa: onednnIsa ?? null,
    threads,
    peak_gflops: peak === null ? null : round(peak, 1),
    products,
    step_peak_fraction: peak === null ? null : round(flops / seconds / 1e9 / peak, 3),
  };
}
