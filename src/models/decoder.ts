/**
 * The decoder every family shares, as Hugging Face's *ForCausalLM classes compute it: embeddings, a stack of
 * blocks (norm, attention with rotary positions, residual; norm, gated MLP, residual) and the output head. What
 * a family changes is data in its ModelConfig (src/models/families/): biases, fused projections, q/k norms,
 * Gemma's (1 + weight) norms and extra norms, activation, scaling, per-layer windows and rotary settings, an
 * attention output gate, and (Qwen3.5) Gated DeltaNet linear attention in place of attention on some layers.
 * Shapes: B batch, T sequence, C hidden, V vocabulary, H heads, KV key/value heads, D head dim; activations
 * are [B*T, features].
 */
import { trim } from '../tensor/pool.js';
import { Rng } from '../tensor/random.js';
import { checkpointed } from '../tensor/checkpoint.js';
import { persistent, Tensor } from '../tensor/tensor.js';
import type { QuantizedMatrix } from '../tensor/quantized.js';
import {
  add,
  affine,
  attention,
  attentionForward,
  attentionFromSaved,
  type AttentionResult,
  columns,
  deltaChannels,
  embedding,
  geglu,
  linear,
  lmHeadLogProbs,
  lmHeadLoss,
  rmsnorm,
  rmsnormScale,
  rope,
  ropeTables,
  sigmoidGate,
  softcap,
  type RopeTables,
  swiglu,
} from '../tensor/ops/index.js';
import { Linear, type ForwardPass } from '../nn/linear.js';
import { maxOf, pushAll } from '../util/arrays.js';
import type { LinearAttentionSizes, ModelConfig } from './config.js';
import { ropeInvFreq, type RopeSpec } from './rope.js';
import { KvCache } from './kv-cache.js';
import { runNativeStack, runsNatively } from './native-stack.js';
import { GatedDeltaNet, type DeltaRun } from './gated-deltanet.js';

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

/** A layer's norm weights by role; null where the family has no such norm. */
export interface LayerNorms {
  /** before attention: input_layernorm */
  attnIn: Tensor<'f32'>;
  /** on attention's output before the residual (Gemma's post_attention_layernorm) */
  attnOut: Tensor<'f32'> | null;
  /** before the MLP: post_attention_layernorm (LLaMA) or pre_feedforward_layernorm (Gemma) */
  mlpIn: Tensor<'f32'>;
  /** on the MLP's output before the residual (Gemma's post_feedforward_layernorm) */
  mlpOut: Tensor<'f32'> | null;
  /** over head_dim on q and k before the rotation (Qwen3, Gemma 3) */
  q: Tensor<'f32'> | null;
  k: Tensor<'f32'> | null;
}

/** Full attention's projections: q, k, v or one fused qkv, and o. */
export interface AttentionProjections {
  input: { q: Linear; k: Linear; v: Linear } | { qkv: Linear };
  o: Linear;
}

/**
 * A layer's projections: its token mixer (full attention, or Gated DeltaNet on Qwen3.5's linear layers), then
 * gate and up or one fused gate_up, and down.
 */
export interface LayerProjections {
  mixer: AttentionProjections | GatedDeltaNet;
  mlp: { gate: Linear; up: Linear } | { gateUp: Linear };
  down: Linear;
}

/** What one block needs besides its weights: the config, its layer's rotary tables, and how to attend. */
export interface BlockContext {
  config: ModelConfig;
  /** null: this layer does not rotate (SmolLM3's no-rope layers) */
  tables: RopeTables | null;
  attend: Attend;
  /** how a linear-attention layer runs (the batch, or generation states) */
  delta: DeltaRun;
  pass?: ForwardPass;
}

export class DecoderLayer {
  constructor(
    readonly norms: LayerNorms,
    readonly proj: LayerProjections,
    /** Hugging Face names of the norms, by role */
    private readonly normNames: Partial<Record<keyof LayerNorms, string>>,
  ) {}

  private norm(x: Tensor<'f32'>, w: Tensor<'f32'>, c: ModelConfig): Tensor<'f32'> {
    return rmsnorm(x, rmsnormScale(w, c.normOffset), c.rmsNormEps);
  }

  /**
   * The block: h + o(attend(rope(q(x)), rope(k(x)), v(x))) with x = norm(h), then + down(act(gate(m)) * up(m))
   * with m = norm(h), plus the family's extra norms. Training and the KV-cache path both call it; `attend` is
   * causal attention over the batch, or each sequence against its cache.
   */
  forward(h: Tensor<'f32'>, ctx: BlockContext): Tensor<'f32'> {
    const { config: c, pass = {} } = ctx;
    const x = this.norm(h, this.norms.attnIn, c);
    const mixer = this.proj.mixer;
    let attnOut = mixer instanceof GatedDeltaNet ? mixer.forward(x, ctx.delta, pass) : this.attention(x, mixer, ctx);
    if (this.norms.attnOut) attnOut = this.norm(attnOut, this.norms.attnOut, c);
    const a = add(h, attnOut);
    const m = this.norm(a, this.norms.mlpIn, c);
    let gate: Tensor<'f32'>, up: Tensor<'f32'>;
    if ('gateUp' in this.proj.mlp) {
      const gu = this.proj.mlp.gateUp.forward(m, pass);
      gate = columns(gu, 0, c.intermediateSize);
      up = columns(gu, c.intermediateSize, c.intermediateSize);
    } else {
      gate = this.proj.mlp.gate.forward(m, pass);
      up = this.proj.mlp.up.forward(m, pass);
    }
    let mlpOut = this.proj.down.forward(c.activation === 'gelu_tanh' ? geglu(gate, up) : swiglu(gate, up), pass);
    if (this.norms.mlpOut) mlpOut = this.norm(mlpOut, this.norms.mlpOut, c);
    return add(a, mlpOut);
  }

  /** o(attend(rope(q(x)), rope(k(x)), v(x))), the output gated by sigmoid(gate) where q_proj yields one. */
  private attention(x: Tensor<'f32'>, p: AttentionProjections, ctx: BlockContext): Tensor<'f32'> {
    const { config: c, tables, pass = {} } = ctx;
    let q: Tensor<'f32'>, k: Tensor<'f32'>, v: Tensor<'f32'>;
    let gate: Tensor<'f32'> | null = null;
    const D = c.headDim,
      qDim = c.numHeads * D,
      kvDim = c.numKvHeads * D;
    if ('qkv' in p.input) {
      const qkv = p.input.qkv.forward(x, pass);
      q = columns(qkv, 0, qDim);
      k = columns(qkv, qDim, kvDim);
      v = columns(qkv, qDim + kvDim, kvDim);
    } else {
      q = p.input.q.forward(x, pass);
      if (c.attentionOutputGate) {
        // each head's 2D values: its query, then its gate
        gate = columns(q, D, D, 2 * D);
        q = columns(q, 0, D, 2 * D);
      }
      k = p.input.k.forward(x, pass);
      v = p.input.v.forward(x, pass);
    }
    if (this.norms.q && this.norms.k) {
      q = this.norm(q, this.norms.q, c);
      k = this.norm(k, this.norms.k, c);
    }
    if (tables) {
      q = rope(q, tables, c.numHeads, D); // [N, H*D]
      k = rope(k, tables, c.numKvHeads, D); // [N, KV*D]
    }
    const attended = ctx.attend(q, k, v);
    return p.o.forward(gate ? sigmoidGate(gate, attended) : attended, pass);
  }

  /** Hugging Face module names of the projections, as adapters and freeze settings name them. */
  projections(): [string, Linear][] {
    const p = this.proj;
    const attn: [string, Linear][] =
      p.mixer instanceof GatedDeltaNet
        ? p.mixer.projections()
        : 'qkv' in p.mixer.input
          ? [
              ['self_attn.qkv_proj', p.mixer.input.qkv],
              ['self_attn.o_proj', p.mixer.o],
            ]
          : [
              ['self_attn.q_proj', p.mixer.input.q],
              ['self_attn.k_proj', p.mixer.input.k],
              ['self_attn.v_proj', p.mixer.input.v],
              ['self_attn.o_proj', p.mixer.o],
            ];
    const mlp: [string, Linear][] =
      'gateUp' in p.mlp
        ? [['mlp.gate_up_proj', p.mlp.gateUp]]
        : [
            ['mlp.gate_proj', p.mlp.gate],
            ['mlp.up_proj', p.mlp.up],
          ];
    return [...attn, ...mlp, ['mlp.down_proj', p.down]];
  }

  /** Norm weights, and a linear-attention mixer's own parameters, by Hugging Face name (relative to the layer). */
  namedVectors(): [string, Tensor<'f32'>][] {
    const out: [string, Tensor<'f32'>][] = [];
    for (const [role, name] of Object.entries(this.normNames) as [keyof LayerNorms, string][]) {
      const w = this.norms[role];
      if (w) out.push([`${name}.weight`, w]);
    }
    if (this.proj.mixer instanceof GatedDeltaNet) pushAll(out, this.proj.mixer.namedParameters());
    return out;
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

export class DecoderModel {
  /** recompute each layer's activations in the backward pass instead of keeping them (training only) */
  gradientCheckpointing = false;

  constructor(
    readonly config: ModelConfig,
    readonly embedTokens: Tensor,
    readonly layers: DecoderLayer[],
    readonly norm: Tensor<'f32'>,
    /** separate output projection, or null when tied to the embeddings */
    readonly lmHead: Tensor | null,
  ) {}

  /** The output projection's weight [V, C]. */
  get outputWeight(): Tensor {
    return this.lmHead ?? this.embedTokens;
  }

  /** A bf16 model (its matrices stored in one dtype, BuildOptions.dtype): attention's products in bf16 too. */
  get bf16(): boolean {
    return this.embedTokens.dtype === 'bf16';
  }

  /** The quantized weights of a QLoRA base by Hugging Face name (namedParameters leaves them out). */
  quantizedWeights(): [string, QuantizedMatrix][] {
    return this.layers.flatMap((layer, i) =>
      layer
        .projections()
        .flatMap(([name, lin]) =>
          lin.quantized ? [[`model.layers.${i}.${name}.weight`, lin.quantized] as [string, QuantizedMatrix]] : [],
        ),
    );
  }

  /** Every parameter by its Hugging Face name (a tied lm_head is not listed twice; quantized weights are not). */
  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [['model.embed_tokens.weight', this.embedTokens]];
    this.layers.forEach((layer, i) => {
      const p = `model.layers.${i}.`;
      for (const [name, w] of layer.namedVectors()) out.push([p + name, w]);
      for (const [name, lin] of layer.projections()) {
        if (!lin.quantized) out.push([`${p}${name}.weight`, lin.weight]);
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
    const positions = input.positions ?? Int32Array.from({ length: B * T }, (_, i) => i % T);
    return {
      B,
      T,
      ids: Tensor.from(input.ids, [B * T], 'i32'),
      positions: Tensor.from(positions, [B * T], 'i32'),
      segments: input.segments ? Tensor.from(input.segments, [B * T], 'i32') : null,
    };
  }

  /**
   * Rotary tables for these positions, one per distinct rope setting of the layers (Gemma 3: local and global),
   * for a sequence of `seqLen` tokens (longrope picks its factors by length).
   */
  private ropeTablesFor(positions: Tensor<'i32'>, seqLen: number): Map<RopeSpec, RopeTables> {
    const out = new Map<RopeSpec, RopeTables>();
    for (const spec of this.config.layerSpecs) {
      if (!spec.rope || out.has(spec.rope)) continue;
      const { inv, attentionFactor } = ropeInvFreq(spec.rope, this.config, seqLen);
      const tables = ropeTables(positions, Tensor.from(inv, [inv.length], 'f32'));
      if (attentionFactor !== 1) {
        // HF multiplies cos and sin by the factor; the backward's inverse rotation stays its transpose
        for (const t of [tables.cos, tables.sin]) for (let i = 0; i < t.size; i++) t.data[i] *= attentionFactor;
      }
      out.set(spec.rope, tables);
    }
    return out;
  }

  private embed(ids: Tensor<'i32'>): Tensor<'f32'> {
    const c = this.config;
    const h = embedding(this.embedTokens, ids, c.padTokenId ?? -1); // [N, C]
    return c.embedScale === 1 ? h : affine(h, c.embedScale);
  }

  private finalNorm(h: Tensor<'f32'>): Tensor<'f32'> {
    const c = this.config;
    return rmsnorm(h, rmsnormScale(this.norm, c.normOffset), c.rmsNormEps);
  }

  /** Final hidden states after the last norm, [B*T, C]. */
  hidden(input: ModelInput): Tensor<'f32'> {
    const c = this.config;
    const b = this.prepare(input);
    const tables = this.ropeTablesFor(b.positions, b.T);
    const shape = {
      batch: b.B,
      seq: b.T,
      heads: c.numHeads,
      kvHeads: c.numKvHeads,
      headDim: c.headDim,
      segments: b.segments,
      scale: c.attentionScale,
      softcap: c.attentionSoftcap,
      bf16: this.bf16,
    };
    let h = this.embed(b.ids);
    if (input.embeddingNoise) h = add(h, neftuneNoise(h.size, b.T * c.hiddenSize, input.embeddingNoise));
    const pass = { dropoutStep: input.dropoutStep };
    const delta: DeltaRun = { kind: 'batch', batch: b.B, seq: b.T, segments: b.segments };
    this.layers.forEach((layer, l) => {
      const spec = c.layerSpecs[l];
      const layerShape = { ...shape, window: spec.window };
      const ctx = { config: c, tables: spec.rope ? tables.get(spec.rope)! : null, pass, delta };
      if (!this.gradientCheckpointing) {
        h = layer.forward(h, { ...ctx, attend: (q, k, v) => attention(q, k, v, layerShape) });
        return;
      }
      // the recomputation reuses attention's output and log-sum-exp from the first run (its costliest part)
      let saved: AttentionResult | null = null;
      h = checkpointed(h, (x, run) =>
        layer.forward(x, {
          ...ctx,
          attend: (q, k, v) => {
            if (run.recompute && saved) return attentionFromSaved(q, k, v, layerShape, saved);
            const r = attentionForward(q, k, v, layerShape);
            saved = { out: run.keep(r.out), lse: run.keep(r.lse) };
            return r.out;
          },
        }),
      );
    });
    return this.finalNorm(h);
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
    caches.forEach((cache, s) => cache.reserve(counts[s]));
    const positions = Int32Array.from(tokens.flatMap((t, s) => t.map((_, i) => caches[s].length + i)));
    const longest = maxOf(caches.map((cache, s) => cache.length + counts[s]));
    const tables = this.ropeTablesFor(Tensor.from(positions, [N], 'i32'), longest);
    const layerTables = c.layerSpecs.map((spec) => (spec.rope ? tables.get(spec.rope)! : null));
    let h = this.embed(Tensor.from(tokens.flat(), [N], 'i32'));
    if (caches.length === 1 && runsNatively(this.layers, c, N)) {
      runNativeStack(h, this.layers, c, caches[0], layerTables);
    } else {
      h = this.layersWithCaches(h, caches, starts, counts, layerTables);
    }
    caches.forEach((cache, s) => cache.commit(counts[s]));
    const last = Tensor.empty([tokens.length, c.hiddenSize], 'f32');
    starts.forEach((start, s) =>
      last.data.set(
        h.data.subarray((start + counts[s] - 1) * c.hiddenSize, (start + counts[s]) * c.hiddenSize),
        s * c.hiddenSize,
      ),
    );
    return this.head(this.finalNorm(last));
  }

  /** extend's layers one kernel at a time: sequences side by side (starts, counts: each one's rows in h). */
  private layersWithCaches(
    h: Tensor<'f32'>,
    caches: KvCache[],
    starts: number[],
    counts: number[],
    layerTables: (RopeTables | null)[],
  ): Tensor<'f32'> {
    const c = this.config;
    this.layers.forEach((layer, l) => {
      const spec = c.layerSpecs[l];
      const options = {
        scale: c.attentionScale,
        window: spec.window,
        softcap: c.attentionSoftcap,
        headDim: c.headDim,
        bf16: this.bf16,
      };
      const cached: Attend = (q, k, v) => {
        const att = Tensor.empty(q.shape, 'f32');
        caches.forEach((cache, s) => cache.attend(l, q, k, v, att, starts[s], counts[s], c.numHeads, options));
        return att;
      };
      const delta: DeltaRun = {
        kind: 'cached',
        sequences: spec.linearAttention
          ? caches.map((cache, s) => ({ from: starts[s], count: counts[s], state: cache.deltaState(l) }))
          : [],
      };
      h = layer.forward(h, { config: c, tables: layerTables[l], attend: cached, delta });
    });
    return h;
  }

  /** An empty KV cache shaped for this model (with a recurrent state for each linear-attention layer). */
  newCache(): KvCache {
    const states = this.layers.map((layer) =>
      layer.proj.mixer instanceof GatedDeltaNet ? layer.proj.mixer.newState() : null,
    );
    return new KvCache(this.layers.length, this.config.numKvHeads * this.config.headDim, states);
  }

  /** Logits of final hidden states, soft-capped when the family caps them (Gemma 2). */
  private head(h: Tensor<'f32'>): Tensor<'f32'> {
    const z = linear(h, this.outputWeight);
    return this.config.finalSoftcap ? softcap(z, this.config.finalSoftcap) : z;
  }

  /** Full logits [B*T, V] (inference and checks; training uses loss() and never holds them). */
  logits(input: ModelInput): Tensor<'f32'> {
    return this.head(this.hidden(input));
  }

  /**
   * sum_t weight[t] * CE(logits_t, target_t) with targets already shifted (Hugging Face: the logits at t
   * predict the label at t+1). Use shiftLabels() and tokenWeights() to build them.
   */
  loss(input: ModelInput, targets: Int32Array, weights: Float32Array): Tensor<'f32'> {
    const h = this.hidden(input);
    const t = Tensor.from(targets, [targets.length], 'i32');
    return lmHeadLoss(h, this.outputWeight, t, weights, this.config.finalSoftcap);
  }

  /** log p(target_t) per token, [B*T] (0 where the target is ignored). */
  tokenLogProbs(input: ModelInput, targets: Int32Array): Tensor<'f32'> {
    const t = Tensor.from(targets, [targets.length], 'i32');
    return lmHeadLogProbs(this.hidden(input), this.outputWeight, t, this.config.finalSoftcap);
  }

  dispose(): void {
    for (const [, p] of this.namedParameters()) p.dispose();
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
  /** QLoRA: every projection quantized as it is read (embeddings, norms and lm_head stay as they are) */
  quantize?: (weight: Tensor) => QuantizedMatrix;
  /** a checkpoint's own quantized projections (null for a plain one), taken as they are when quantizing */
  quantizedSource?: (name: string, shape: number[]) => QuantizedMatrix | null;
}

/** Supplies each parameter by Hugging Face name and shape: from a folder, or freshly initialised. */
export type ParameterSource = (name: string, shape: number[], dtype: 'f32' | 'bf16') => Tensor;

/** Builds the model's parameters from a source, in Hugging Face order. */
export function buildDecoder(config: ModelConfig, source: ParameterSource, opts: BuildOptions): DecoderModel {
  const c = config;
  return persistent(() => {
    const matrix = (name: string, shape: number[]) => source(name, shape, opts.dtype);
    const vector = (name: string, n: number) => source(name, [n], 'f32') as Tensor<'f32'>;
    const projection = (name: string, shape: number[]) => {
      const stored = opts.quantize ? opts.quantizedSource?.(name, shape) : null;
      if (stored) return stored;
      const w = matrix(name, shape);
      if (!opts.quantize) return w;
      const q = opts.quantize(w);
      w.dispose();
      return q;
    };
    const lin = (prefix: string, out: number, inF: number, bias: boolean) =>
      new Linear(projection(`${prefix}.weight`, [out, inF]), bias ? vector(`${prefix}.bias`, out) : null);
    const C = c.hiddenSize,
      I = c.intermediateSize,
      D = c.headDim,
      qDim = c.numHeads * D,
      kvDim = c.numKvHeads * D;
    if (c.attentionOutputGate && c.fusedProjections)
      throw new Error('an attention output gate from a fused qkv_proj is not implemented');
    const deltaNet = (prefix: string, sizes: LinearAttentionSizes) => {
      const values = sizes.valueHeads * sizes.valueDim;
      const channels = deltaChannels(sizes);
      return new GatedDeltaNet(
        {
          qkv: lin(`${prefix}.in_proj_qkv`, channels, C, false),
          z: lin(`${prefix}.in_proj_z`, values, C, false),
          b: lin(`${prefix}.in_proj_b`, sizes.valueHeads, C, false),
          a: lin(`${prefix}.in_proj_a`, sizes.valueHeads, C, false),
          out: lin(`${prefix}.out_proj`, C, values, false),
        },
        source(`${prefix}.conv1d.weight`, [channels, 1, sizes.convKernel], 'f32') as Tensor<'f32'>,
        vector(`${prefix}.A_log`, sizes.valueHeads),
        vector(`${prefix}.dt_bias`, sizes.valueHeads),
        vector(`${prefix}.norm.weight`, sizes.valueDim),
        sizes,
        c.rmsNormEps,
      );
    };
    const embed = matrix('model.embed_tokens.weight', [c.vocabSize, C]);
    const layers: DecoderLayer[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      const p = `model.layers.${i}`;
      const normNames = layerNormNames(c, i);
      const norm = (role: keyof LayerNorms, n: number) => {
        const name = normNames[role];
        return name ? vector(`${p}.${name}.weight`, n) : null;
      };
      const linearSizes = c.layerSpecs[i].linearAttention ? c.linearAttention : null;
      const mixer = linearSizes
        ? deltaNet(`${p}.linear_attn`, linearSizes)
        : {
            input: c.fusedProjections
              ? { qkv: lin(`${p}.self_attn.qkv_proj`, qDim + 2 * kvDim, C, c.qkvBias) }
              : {
                  q: lin(`${p}.self_attn.q_proj`, c.attentionOutputGate ? 2 * qDim : qDim, C, c.qkvBias),
                  k: lin(`${p}.self_attn.k_proj`, kvDim, C, c.qkvBias),
                  v: lin(`${p}.self_attn.v_proj`, kvDim, C, c.qkvBias),
                },
            o: lin(`${p}.self_attn.o_proj`, C, qDim, c.oBias),
          };
      const mlp = c.fusedProjections
        ? { gateUp: lin(`${p}.mlp.gate_up_proj`, 2 * I, C, c.mlpBias) }
        : { gate: lin(`${p}.mlp.gate_proj`, I, C, c.mlpBias), up: lin(`${p}.mlp.up_proj`, I, C, c.mlpBias) };
      const down = lin(`${p}.mlp.down_proj`, C, I, c.mlpBias);
      const norms: LayerNorms = {
        attnIn: norm('attnIn', C)!,
        attnOut: norm('attnOut', C),
        mlpIn: norm('mlpIn', C)!,
        mlpOut: norm('mlpOut', C),
        q: norm('q', D),
        k: norm('k', D),
      };
      layers.push(new DecoderLayer(norms, { mixer, mlp, down }, normNames));
    }
    const norm = vector('model.norm.weight', C);
    const lmHead = c.tieWordEmbeddings ? null : matrix('lm_head.weight', [c.vocabSize, C]);
    const model = new DecoderModel(c, embed, layers, norm, lmHead);
    trim(); // conversion buffers of the load go back to the system, not to the pool
    return model;
  });
}

/** Hugging Face names of layer i's norms by role, for the family's options (q/k norms belong to attention). */
function layerNormNames(c: ModelConfig, i: number): Partial<Record<keyof LayerNorms, string>> {
  return {
    attnIn: 'input_layernorm',
    ...(c.sandwichNorms
      ? {
          attnOut: 'post_attention_layernorm',
          mlpIn: 'pre_feedforward_layernorm',
          mlpOut: 'post_feedforward_layernorm',
        }
      : { mlpIn: 'post_attention_layernorm' }),
    ...(c.qkNorm && !c.layerSpecs[i].linearAttention ? { q: 'self_attn.q_norm', k: 'self_attn.k_norm' } : {}),
  };
}
