/**
 * `lmf bench`: throughput of training steps (or forward passes) on a preset shape or a model folder,
 * measured the way ../reference/torch/bench_train.py measures PyTorch, so the two can run side by side:
 * forward + backward + clip_grad_norm(1.0) + AdamW per step, median over the timed steps.
 *
 * Under mpirun (`lmf bench --nproc N`) every rank trains its own batch and the gradients are reduced as in
 * training (gradient-sync.ts; --zero: ZeRO-1): tokens/s is then the world's, with the bytes each rank sends
 * per step and the time it waited for the reduction after backward.
 */
import { attachLora } from '../adapters/lora.js';
import { type ModelConfig } from '../models/config.js';
import { initModel, presetConfig } from '../models/init.js';
import { presets } from '../models/presets.js';
import { shiftLabels, tokenWeights, type DecoderModel } from '../models/decoder.js';
import { LmfError } from '../errors.js';
import { quantizeFor } from '../models/quant/quantize.js';
import { loadModel } from '../models/registry.js';
import { native } from '../native.js';
import { backward, noGrad } from '../tensor/autograd.js';
import { Rng } from '../tensor/random.js';
import { memoryStats } from '../tensor/pool.js';
import { withScope, type Tensor } from '../tensor/tensor.js';
import { world as joinWorld } from '../distributed/world.js';
import { adaptThreads } from '../threads.js';
import { AdamW, type Optimizer } from '../train/adamw.js';
import { shareThreads } from '../train/data-parallel.js';
import { GradientSync } from '../train/gradient-sync.js';
import { ShardedAdamW } from '../train/zero.js';
import { attachBf16Copies } from '../train/methods.js';
import { maxOf, minOf } from '../util/arrays.js';
import { measuredPeak } from './peak.js';
import { matmulParams } from './projections.js';

export type BenchMode = 'full' | 'lora' | 'infer';

export interface BenchOptions {
  /** preset name (smollm2-135m, qwen2.5-0.5b) or a model folder */
  model: string;
  mode: BenchMode;
  dtype: 'f32' | 'bf16';
  seq: number;
  batch: number;
  steps: number;
  warmup: number;
  loraRank: number;
  /** recompute each layer's activations in the backward pass */
  gradientCheckpointing?: boolean;
  /** QLoRA: the base's projections in 4-bit NF4 (double quantization) or 8-bit int8 */
  quantizationBit?: 4 | 8;
  /** data parallel (under mpirun): the optimiser sharded as ZeRO-1 */
  zero?: boolean;
}

export interface BenchResult {
  model: string;
  mode: BenchMode;
  dtype: string;
  gradient_checkpointing: boolean;
  quantization_bit: number | null;
  seq: number;
  batch: number;
  steps: number;
  threads: number;
  params: number;
  trainable_params: number;
  tokens_per_s: number;
  step_s: number;
  step_s_min: number;
  step_s_max: number;
  /** model FLOPs per second (matmuls and attention; README: Speed) */
  gflops: number;
  /**
   * the arithmetic peak of this path measured in the same run: bf16 dot products for bf16, else f32 FMAs; null
   * for bf16 where oneDNN's matmuls run on AMX tiles (not measured)
   */
  peak_gflops: number | null;
  peak_fraction: number | null;
  peak_rss_mb: number;
  peak_native_mb: number;
  first_loss: number | null;
  last_loss: number | null;
  /** data-parallel ranks (tokens/s, gflops and peak are the whole world's) */
  ranks: number;
  /** bytes each rank sends per step to reduce the gradients (and, ZeRO-1, gather the weights) */
  comm_mb_per_step: number;
  /** median time a rank waited after backward for the reduction to end (what the overlap did not hide) */
  sync_wait_s: number;
  /** share of the gradient buckets sent while backward still ran */
  buckets_sent_early: number;
}

/**
 * Attention's forward FLOPs per token at sequence length T: QKᵀ and PV cost 2·heads·head_dim each per key a
 * query sees, and a causal query sees (i + 1) keys (at most the layer's window). A Gated DeltaNet layer's rule
 * costs 6·dk·dv per value head (recall S^T k, write k δ^T, read S^T q), whatever T.
 */
export function attentionFlopsPerToken(c: ModelConfig, T: number): number {
  let total = 0;
  for (const spec of c.layerSpecs) {
    if (spec.linearAttention) {
      const la = c.linearAttention!;
      total += 6 * la.valueHeads * la.keyDim * la.valueDim;
      continue;
    }
    const w = Math.min(spec.window ?? T, T);
    const visible = (w * (w + 1)) / 2 + (T - w) * w;
    total += 4 * c.numHeads * c.headDim * (visible / T);
  }
  return total;
}

function buildModel(o: BenchOptions): { model: DecoderModel; name: string } {
  // LoRA and inference in bf16 keep the frozen base in bf16; full bf16 keeps f32 master weights.
  const storage = o.dtype === 'bf16' && o.mode !== 'full' ? 'bf16' : 'f32';
  const quantize = quantizeFor(o.quantizationBit ?? null, 'nf4', true, o.dtype);
  if (o.model in presets) return { model: initModel(presetConfig(o.model), storage, 0, 0.02, quantize), name: o.model };
  return { model: loadModel(o.model, { dtype: storage, quantize }).model, name: o.model };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** The result (on rank 0; null on the other ranks of a data-parallel run). */
export function runBench(o: BenchOptions): BenchResult | null {
  if (o.quantizationBit && o.mode === 'full')
    throw new LmfError('bad_value', 'a quantized base can only be trained with LoRA', { hint: 'use --mode lora' });
  const { model, name } = buildModel(o);
  model.gradientCheckpointing = o.gradientCheckpointing === true;
  const c = model.config;
  const params = model.namedParameters().map(([, p]) => p);
  let trainable: Tensor<'f32'>[] = [];
  let loraParams = 0;
  if (o.mode === 'full') {
    trainable = params as Tensor<'f32'>[];
    for (const p of trainable) p.requiresGrad = true;
    if (o.dtype === 'bf16') attachBf16Copies(model.namedParameters() as [string, Tensor<'f32'>][]);
  } else if (o.mode === 'lora') {
    const layers = attachLora(
      model,
      { r: o.loraRank, alpha: 2 * o.loraRank, dropout: 0, targetModules: 'all', useRslora: false },
      new Rng(0),
    );
    trainable = [...layers.values()].flatMap((l) => [l.A, l.B]);
    loraParams = trainable.reduce((a, p) => a + p.size, 0);
  }
  const world = joinWorld();
  shareThreads(world);
  const groups = [{ params: trainable, lr: 1e-5, weightDecay: 0 }];
  const sync = world.size > 1 && o.mode !== 'infer' ? new GradientSync(world, trainable, !o.zero) : null;
  const optimizer: Optimizer | null =
    o.mode === 'infer'
      ? null
      : sync && o.zero
        ? new ShardedAdamW(world, groups, { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, sync.buckets)
        : new AdamW(groups);
  // each rank its own batch
  const rng = new Rng(1 + world.rank);
  const ids = Int32Array.from({ length: o.batch * o.seq }, () => rng.int(c.vocabSize));
  const input = { ids, batch: o.batch, seq: o.seq };
  const targets = shiftLabels(ids, o.batch, o.seq);
  const weights = tokenWeights(targets);

  const step = (): number | null =>
    withScope(() => {
      adaptThreads();
      if (!optimizer) {
        noGrad(() => model.logits(input));
        return null;
      }
      const loss = model.loss(input, targets, weights);
      const value = loss.data[0];
      sync?.beginMicro(true);
      backward(loss);
      const t0 = performance.now();
      sync?.finish();
      waits.push((performance.now() - t0) / 1000);
      optimizer.update(1, 1.0);
      optimizer.zeroGrad();
      return value;
    });

  const times: number[] = [];
  const waits: number[] = [];
  const losses: (number | null)[] = [];
  memoryStats(true);
  for (let i = 0; i < o.warmup + o.steps; i++) {
    const t0 = performance.now();
    losses.push(step());
    const dt = (performance.now() - t0) / 1000;
    if (i >= o.warmup) times.push(dt);
  }
  const med = median(times);
  const tokens = o.batch * o.seq;
  const N = matmulParams(c);
  // training runs attention forward and backward (dQ, dK, dV: twice the forward's products) in every mode
  const attention = attentionFlopsPerToken(c, o.seq) * (o.mode === 'infer' ? 1 : 3);
  const flopsPerToken = (o.mode === 'full' ? 6 * N : o.mode === 'lora' ? 4 * N + 6 * loraParams : 2 * N) + attention;
  const gflops = (flopsPerToken * tokens * world.size) / med / 1e9;
  // every rank measures its own threads' peak at the same time
  const rankPeak = measuredPeak(o.dtype);
  const peak = rankPeak === null ? null : rankPeak * world.size;
  if (!world.isMain) {
    optimizer?.dispose();
    model.dispose();
    return null;
  }
  const trainableBytes = trainable.reduce((a, p) => a + p.size, 0) * 4;
  // all-to-all then all-gather of the gradients (ZeRO-1: all-gather of the weights instead): each sends (W-1)/W of them twice
  const commBytes = world.size > 1 && optimizer ? (2 * trainableBytes * (world.size - 1)) / world.size : 0;
  const result: BenchResult = {
    model: name,
    mode: o.mode,
    dtype: o.dtype,
    gradient_checkpointing: model.gradientCheckpointing,
    quantization_bit: o.quantizationBit ?? null,
    seq: o.seq,
    batch: o.batch,
    steps: o.steps,
    threads: native.threads(),
    params:
      params.reduce((a, p) => a + p.size, 0) +
      model.quantizedWeights().reduce((a, [, q]) => a + q.shape[0] * q.shape[1], 0),
    trainable_params: trainable.reduce((a, p) => a + p.size, 0),
    tokens_per_s: significant((tokens * world.size) / med),
    step_s: round(med, 4),
    step_s_min: round(minOf(times), 4),
    step_s_max: round(maxOf(times), 4),
    gflops: significant(gflops),
    peak_gflops: peak === null ? null : significant(peak),
    peak_fraction: peak === null ? null : round(gflops / peak, 3),
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    peak_native_mb: Math.round(memoryStats().peakBytes / 2 ** 20),
    first_loss: losses[0],
    last_loss: losses[losses.length - 1],
    ranks: world.size,
    comm_mb_per_step: round(commBytes / 2 ** 20, 3),
    sync_wait_s: waits.length ? round(median(waits.slice(o.warmup)), 4) : 0,
    buckets_sent_early: sync ? round(sync.sentEarly / (sync.buckets.length * (o.warmup + o.steps)), 3) : 0,
  };
  optimizer?.dispose();
  model.dispose();
  return result;
}

/** Four significant digits: a tiny model's rates stay nonzero, a large one's keep no false precision. */
function significant(x: number): number {
  return Number(x.toPrecision(4));
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
