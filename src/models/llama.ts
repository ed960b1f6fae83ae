/**
 * The LLaMA family as Hugging Face's LlamaForCausalLM computes it (Mistral and Qwen2 differ only by
 * config: biases, sliding window, rope settings). Shapes: B batch, T sequence, C hidden, V vocabulary,
 * H heads, KV key/value heads, D head dim; activations are [B*T, features].
 */
import { trim } from '../tensor/pool.js';
import { Rng } from '../tensor/random.js';
import { persistent, Tensor } from '../tensor/tensor.js';
import {
  add,
  attention,
  embedding,
  linear,
  lmHeadLogProbs,
  lmHeadLoss,
  rmsnorm,
  rope,
  ropeTables,
  type RopeTables,
  swiglu,
} from '../tensor/ops/index.js';
import { LmfError } from '../errors.js';
import { Linear, type ForwardPass } from '../nn/linear.js';
import { ropeInvFreq, type ModelConfig } from './config.js';
import type { WeightFolder } from './weights.js';
import { KvCache } from './kv-cache.js';

/** One batch of token ids [B, T], with optional per-token positions and segment ids (packing, padding). */
export interface ModelInput {
  ids: Int32Array;
  batch: number;
  seq: number;
  /** position of each token; default 0..T-1 in every row */
  positions?: Int32Array;
  /** tokens attend only within their segment; default one segment per row */
  segments?: Int32Array;
  /** NEFTune: uniform noise of magnitude alpha / sqrt(T * C) added to the embeddings (training only) */
  embeddingNoise?: { alpha: number; seed: number };
  /** the trainer's micro-batch counter, from which adapter dropout draws its masks (training only) */
  dropoutStep?: number;
}

/** How base weights are stored: f32, or bf16 for frozen bases and bf16 training. Norms and biases stay f32. */
export type WeightDType = 'f32' | 'bf16';

export class DecoderLayer {
  constructor(
    readonly inputNorm: Tensor<'f32'>,
    readonly q: Linear,
    readonly k: Linear,
    readonly v: Linear,
    readonly o: Linear,
    readonly postNorm: Tensor<'f32'>,
    readonly gate: Linear,
    readonly up: Linear,
    readonly down: Linear,
  ) {}

  /**
   * The block: h + o(attend(rope(q(x)), rope(k(x)), v(x))) with x = norm(h), then + down(swiglu(gate(m), up(m)))
   * with m = norm(h). Training and the KV-cache path both call it; `attend` is causal attention over the batch,
   * or each sequence against its cache.
   */
  forward(h: Tensor<'f32'>, c: ModelConfig, tables: RopeTables, attend: Attend, pass: ForwardPass = {}): Tensor<'f32'> {
    const x = rmsnorm(h, this.inputNorm, c.rmsNormEps);
    const q = rope(this.q.forward(x, pass), tables, c.numHeads); // [N, H*D]
    const k = rope(this.k.forward(x, pass), tables, c.numKvHeads); // [N, KV*D]
    const v = this.v.forward(x, pass);
    const a = add(h, this.o.forward(attend(q, k, v), pass));
    const m = rmsnorm(a, this.postNorm, c.rmsNormEps);
    return add(a, this.down.forward(swiglu(this.gate.forward(m, pass), this.up.forward(m, pass)), pass));
  }

  /** Hugging Face module names of the projections, as adapters and freeze settings name them. */
  projections(): [string, Linear][] {
    return [
      ['self_attn.q_proj', this.q],
      ['self_attn.k_proj', this.k],
      ['self_attn.v_proj', this.v],
      ['self_attn.o_proj', this.o],
      ['mlp.gate_proj', this.gate],
      ['mlp.up_proj', this.up],
      ['mlp.down_proj', this.down],
    ];
  }
}

/** Attention of a block's rotated queries and keys and its values [N, heads*headDim] → [N, H*D]. */
type Attend = (q: Tensor<'f32'>, k: Tensor<'f32'>, v: Tensor<'f32'>) => Tensor<'f32'>;

interface Batch {
  B: number;
  T: number;
  ids: Tensor<'i32'>;
  positions: Tensor<'i32'>;
  segments: Tensor<'i32'> | null;
}

export class LlamaModel {
  readonly config: ModelConfig;
  readonly embedTokens: Tensor;
  readonly layers: DecoderLayer[];
  readonly norm: Tensor<'f32'>;
  /** separate output projection, or null when tied to the embeddings */
  readonly lmHead: Tensor | null;
  private readonly invFreq: Tensor<'f32'>;

  constructor(
    config: ModelConfig,
    embedTokens: Tensor,
    layers: DecoderLayer[],
    norm: Tensor<'f32'>,
    lmHead: Tensor | null,
  ) {
    this.config = config;
    this.embedTokens = embedTokens;
    this.layers = layers;
    this.norm = norm;
    this.lmHead = lmHead;
    this.invFreq = persistent(() => Tensor.from(ropeInvFreq(config), [config.headDim / 2], 'f32'));
  }

  /** The output projection's weight [V, C]. */
  get outputWeight(): Tensor {
    return this.lmHead ?? this.embedTokens;
  }

  /** Every parameter by its Hugging Face name (a tied lm_head is not listed twice). */
  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [['model.embed_tokens.weight', this.embedTokens]];
    this.layers.forEach((layer, i) => {
      const p = `model.layers.${i}.`;
      out.push([`${p}input_layernorm.weight`, layer.inputNorm]);
      out.push([`${p}post_attention_layernorm.weight`, layer.postNorm]);
      for (const [name, lin] of layer.projections()) {
        out.push([`${p}${name}.weight`, lin.weight]);
        if (lin.bias) out.push([`${p}${name}.bias`, lin.bias]);
      }
    });
    out.push(['model.norm.weight', this.norm]);
    if (this.lmHead) out.push(['lm_head.weight', this.lmHead]);
    return out;
  }

  private prepare(input: ModelInput): Batch {
    const { batch: B, seq: T } = input;
    if (input.ids.length !== B * T) throw new Error(`model input: ${input.ids.length} ids for batch ${B} × seq ${T}`);
    const window = this.config.slidingWindow;
    if (window !== null && T > window) {
      throw new LmfError('sequence_too_long', `sequence length ${T} exceeds the model's sliding window ${window}`, {
        key: 'cutoff_len',
        hint: `set cutoff_len to at most ${window}`,
      });
    }
    const positions = input.positions ?? Int32Array.from({ length: B * T }, (_, i) => i % T);
    return {
      B,
      T,
      ids: Tensor.from(input.ids, [B * T], 'i32'),
      positions: Tensor.from(positions, [B * T], 'i32'),
      segments: input.segments ? Tensor.from(input.segments, [B * T], 'i32') : null,
    };
  }

  /** Final hidden states after the last norm, [B*T, C]. */
  hidden(input: ModelInput): Tensor<'f32'> {
    const c = this.config;
    const b = this.prepare(input);
    const tables = ropeTables(b.positions, this.invFreq);
    const shape = {
      batch: b.B,
      seq: b.T,
      heads: c.numHeads,
      kvHeads: c.numKvHeads,
      headDim: c.headDim,
      segments: b.segments,
    };
    let h = embedding(this.embedTokens, b.ids, c.padTokenId ?? -1); // [B*T, C]
    if (input.embeddingNoise) h = add(h, neftuneNoise(h.size, b.T * c.hiddenSize, input.embeddingNoise));
    const pass = { dropoutStep: input.dropoutStep };
    const causal: Attend = (q, k, v) => attention(q, k, v, shape);
    for (const layer of this.layers) h = layer.forward(h, c, tables, causal, pass);
    return rmsnorm(h, this.norm, c.rmsNormEps);
  }

  /**
   * Inference with KV caches: each sequence s adds tokens[s] after the ones its cache holds; returns the
   * logits of each sequence's last new token, [S, V]. Prefill (many tokens) and decode (one) are the same
   * call, and sequences of any lengths share every matmul. Callers run it under noGrad.
   */
  extend(tokens: number[][], caches: KvCache[]): Tensor<'f32'> {
    const c = this.config;
    const counts = tokens.map((t) => t.length);
    const starts = counts.map((_, s) => counts.slice(0, s).reduce((a, n) => a + n, 0));
    const N = starts[starts.length - 1] + counts[counts.length - 1];
    const window = c.slidingWindow;
    caches.forEach((cache, s) => {
      if (window !== null && cache.length + counts[s] > window) {
        throw new Error(
          `the conversation (${cache.length + counts[s]} tokens) exceeds the model's sliding window ${window}`,
        );
      }
      cache.reserve(counts[s]);
    });
    const positions = Int32Array.from(tokens.flatMap((t, s) => t.map((_, i) => caches[s].length + i)));
    const tables = ropeTables(Tensor.from(positions, [N], 'i32'), this.invFreq);
    let h = embedding(this.embedTokens, Tensor.from(tokens.flat(), [N], 'i32'), c.padTokenId ?? -1);
    this.layers.forEach((layer, l) => {
      const cached: Attend = (q, k, v) => {
        const att = Tensor.empty(q.shape, 'f32');
        caches.forEach((cache, s) => cache.attend(l, q, k, v, att, starts[s], counts[s], c.numHeads, c.headDim));
        return att;
      };
      h = layer.forward(h, c, tables, cached);
    });
    caches.forEach((cache, s) => cache.commit(counts[s]));
    const last = Tensor.empty([tokens.length, c.hiddenSize], 'f32');
    starts.forEach((start, s) =>
      last.data.set(
        h.data.subarray((start + counts[s] - 1) * c.hiddenSize, (start + counts[s]) * c.hiddenSize),
        s * c.hiddenSize,
      ),
    );
    return linear(rmsnorm(last, this.norm, c.rmsNormEps), this.outputWeight);
  }

  /** An empty KV cache shaped for this model. */
  newCache(): KvCache {
    return new KvCache(this.layers.length, this.config.numKvHeads * this.config.headDim);
  }

  /** Full logits [B*T, V] (inference and checks; training uses loss() and never holds them). */
  logits(input: ModelInput): Tensor<'f32'> {
    return linear(this.hidden(input), this.outputWeight);
  }

  /**
   * sum_t weight[t] * CE(logits_t, target_t) with targets already shifted (Hugging Face: the logits at t
   * predict the label at t+1). Use shiftLabels() and tokenWeights() to build them.
   */
  loss(input: ModelInput, targets: Int32Array, weights: Float32Array): Tensor<'f32'> {
    const h = this.hidden(input);
    return lmHeadLoss(h, this.outputWeight, Tensor.from(targets, [targets.length], 'i32'), weights);
  }

  /** log p(target_t) per token, [B*T] (0 where the target is ignored). */
  tokenLogProbs(input: ModelInput, targets: Int32Array): Tensor<'f32'> {
    return lmHeadLogProbs(this.hidden(input), this.outputWeight, Tensor.from(targets, [targets.length], 'i32'));
  }

  dispose(): void {
    for (const [, p] of this.namedParameters()) p.dispose();
    this.invFreq.dispose();
  }
}

/** NEFTune's noise: uniform in [-alpha/sqrt(T*C), alpha/sqrt(T*C)], drawn from a seeded generator. */
function neftuneNoise(n: number, dims: number, o: { alpha: number; seed: number }): Tensor<'f32'> {
  const mag = o.alpha / Math.sqrt(dims);
  const rng = new Rng(o.seed);
  const t = Tensor.empty([n], 'f32');
  for (let i = 0; i < n; i++) t.data[i] = (rng.uniform() * 2 - 1) * mag;
  return t;
}

/** labels [B, T] (-100 ignored) -> targets where position t holds the label of t+1; the last of each row ignored. */
export function shiftLabels(labels: ArrayLike<number>, batch: number, seq: number): Int32Array {
  const out = new Int32Array(batch * seq).fill(-100);
  for (let b = 0; b < batch; b++) for (let t = 0; t + 1 < seq; t++) out[b * seq + t] = labels[b * seq + t + 1];
  return out;
}

/** Weight 1/count for every counted target, so the loss is the mean over `count` tokens (default: these). */
export function tokenWeights(targets: Int32Array, count?: number): Float32Array {
  const n = count ?? targets.reduce((a, t) => a + (t >= 0 ? 1 : 0), 0);
  return Float32Array.from(targets, (t) => (t >= 0 && n > 0 ? 1 / n : 0));
}

export interface BuildOptions {
  /** storage of matrices (embeddings, projections, lm_head) */
  dtype: WeightDType;
}

/** Supplies each parameter by Hugging Face name and shape: from a folder, or freshly initialised. */
export type ParameterSource = (name: string, shape: number[], dtype: 'f32' | 'bf16') => Tensor;

/** Builds the model's parameters from a source, in Hugging Face order. */
export function buildLlama(config: ModelConfig, source: ParameterSource, opts: BuildOptions): LlamaModel {
  const c = config;
  return persistent(() => {
    const matrix = (name: string, shape: number[]) => source(name, shape, opts.dtype);
    const vector = (name: string, n: number) => source(name, [n], 'f32') as Tensor<'f32'>;
    const lin = (prefix: string, out: number, inF: number, bias: boolean) =>
      new Linear(matrix(`${prefix}.weight`, [out, inF]), bias ? vector(`${prefix}.bias`, out) : null);
    const C = c.hiddenSize,
      I = c.intermediateSize,
      qDim = c.numHeads * c.headDim,
      kvDim = c.numKvHeads * c.headDim;
    const embed = matrix('model.embed_tokens.weight', [c.vocabSize, C]);
    const layers: DecoderLayer[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      const p = `model.layers.${i}`;
      layers.push(
        new DecoderLayer(
          vector(`${p}.input_layernorm.weight`, C),
          lin(`${p}.self_attn.q_proj`, qDim, C, c.qkvBias),
          lin(`${p}.self_attn.k_proj`, kvDim, C, c.qkvBias),
          lin(`${p}.self_attn.v_proj`, kvDim, C, c.qkvBias),
          lin(`${p}.self_attn.o_proj`, C, qDim, c.oBias),
          vector(`${p}.post_attention_layernorm.weight`, C),
          lin(`${p}.mlp.gate_proj`, I, C, c.mlpBias),
          lin(`${p}.mlp.up_proj`, I, C, c.mlpBias),
          lin(`${p}.mlp.down_proj`, C, I, c.mlpBias),
        ),
      );
    }
    const norm = vector('model.norm.weight', C);
    const lmHead = c.tieWordEmbeddings ? null : matrix('lm_head.weight', [c.vocabSize, C]);
    const model = new LlamaModel(c, embed, layers, norm, lmHead);
    trim(); // conversion buffers of the load go back to the system, not to the pool
    return model;
  });
}

/** Loads a model from a weight folder; every tensor's presence and shape is checked. */
export function loadLlama(config: ModelConfig, weights: WeightFolder, opts: BuildOptions): LlamaModel {
  return buildLlama(config, (name, shape, dtype) => weights.read(name, shape, dtype), opts);
}
