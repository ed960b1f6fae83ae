/**
 * LoRA: y = base(x) + scale * B(A(dropout(x))), A [r, in], B [out, r], scale = alpha / r (rsLoRA:
 * alpha / sqrt(r)). Initialised as PEFT does: A ~ kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)),
 * B = 0, so training starts from the base model exactly.
 */
import type { ForwardPass, Linear, LinearDelta, LowRankUpdate } from '../nn/linear.js';
import type { CausalLM } from '../models/registry.js';
import { add, doraScale, dropout, linear, loraLinear } from '../tensor/ops/index.js';
import { needsGrad } from '../tensor/autograd.js';
import type { Rng } from '../tensor/random.js';
import { native, NativeDType } from '../native.js';
import { QuantizedMatrix } from '../tensor/quantized.js';
import { persistent, Tensor, withScope } from '../tensor/tensor.js';
import { LmfError } from '../errors.js';

export interface LoraSettings {
  r: number;
  alpha: number;
  dropout: number;
  /** module names (q_proj, mlp.down_proj …), a regular expression string, or 'all' for every projection */
  targetModules: string[] | string;
  useRslora: boolean;
  /** DoRA: a trained magnitude per output feature rescales the adapted weight's rows */
  useDora?: boolean;
  /** whole modules trained and saved beside the adapter (PEFT's modules_to_save, LLaMA-Factory's additional_target) */
  modulesToSave?: string[];
  /** per-module rank and alpha overrides (PEFT's rank_pattern / alpha_pattern) */
  rankPattern?: Record<string, number>;
  alphaPattern?: Record<string, number>;
  /** PEFT's init_lora_weights: true (A random, B zero), or PiSSA's "pissa" / "pissa_niter_N" (adapters/pissa.ts) */
  initLoraWeights?: true | string;
}

export class LoraLayer implements LinearDelta {
  readonly A: Tensor<'f32'>;
  readonly B: Tensor<'f32'>;
  readonly scale: number;
  readonly dropoutP: number;
  /** DoRA magnitude [out], or null for plain LoRA */
  readonly magnitude: Tensor<'f32'> | null;
  enabled = true;
  /** distinguishes this layer's masks from the other layers' */
  private readonly index: number;

  constructor(
    A: Tensor<'f32'>,
    B: Tensor<'f32'>,
    scale: number,
    dropoutP: number,
    index: number,
    magnitude: Tensor<'f32'> | null = null,
  ) {
    this.A = A;
    this.B = B;
    this.scale = scale;
    this.dropoutP = dropoutP;
    this.index = index;
    this.magnitude = magnitude;
  }

  /**
   * Row norms of the adapted weight W + scale * B A, [out] (DoRA's denominator; no gradient flows through it). A
   * quantized base is dequantised a panel of rows at a time, as its projections read it.
   */
  adaptedRowNorms(weight: Tensor | QuantizedMatrix): Float32Array {
    return withScope(() => {
      const adapted = this.mergedDelta();
      const [outF, inF] = adapted.shape;
      if (weight instanceof QuantizedMatrix) {
        const P = Math.min(outF, weight.panelRows());
        const panel = new Float32Array(P * inF);
        for (let row0 = 0; row0 < outF; row0 += P) {
          const rows = Math.min(P, outF - row0);
          weight.dequantizeRows(row0, rows, panel.subarray(0, rows * inF));
          const target = adapted.data.subarray(row0 * inF, (row0 + rows) * inF);
          native.axpby(target, panel, target, rows * inF, 1, 1);
        }
      } else {
        const w = weight.dtype === 'f32' ? (weight as Tensor<'f32'>) : weight.toF32();
        native.axpby(adapted.data, w.data, adapted.data, adapted.size, 1, 1);
      }
      const norms = new Float32Array(outF);
      for (let o = 0; o < outF; o++) {
        let ss = 0;
        for (let i = 0; i < inF; i++) ss += adapted.data[o * inF + i] ** 2;
        norms[o] = Math.sqrt(ss);
      }
      return norms;
    });
  }

  get rank(): number {
    return this.A.shape[0];
  }

  /**
   * Dropout masks are a pure function of (the pass's micro-batch counter, the layer), so a resumed run draws
   * exactly the masks an uninterrupted one would.
   */
  forward(x: Tensor<'f32'>, layer: Linear, pass?: ForwardPass): Tensor<'f32'> {
    const base = layer.stored;
    if (this.magnitude) {
      // DoRA: y = m / ||W + s B A||_row * (x W^T + s (x A^T) B^T) + bias
      const nInv = this.adaptedRowNorms(base).map((n) => 1 / n);
      return doraScale(loraLinear(x, x, base, null, this.A, this.B, this.scale), this.magnitude, nInv, layer.bias);
    }
    return loraLinear(x, this.dropped(x, pass), base, layer.bias, this.A, this.B, this.scale);
  }

  lowRank(): LowRankUpdate | null {
    return this.magnitude ? null : { A: this.A, B: this.B, scale: this.scale };
  }

  /** The adapter's input: dropout in training passes only (they carry the step); evaluation sees it whole. */
  private dropped(x: Tensor<'f32'>, pass?: ForwardPass): Tensor<'f32'> {
    const seed = (Math.imul(pass?.dropoutStep ?? 0, 0x9e3779b1) + this.index) >>> 0;
    return this.dropoutP > 0 && pass?.dropoutStep !== undefined ? dropout(x, this.dropoutP, seed) : x;
  }

  /** scale · (x Aᵀ) Bᵀ alone, without the base (a further adapter of a stack; inference only: scales in place). */
  deltaOnly(x: Tensor<'f32'>): Tensor<'f32'> {
    if (this.magnitude || needsGrad([x, this.A, this.B]))
      throw new LmfError('internal', 'only plain LoRA adapters can be stacked, and only at inference');
    const u = linear(x, this.A);
    native.axpby(u.data, null, u.data, u.size, this.scale, 0);
    return linear(u, this.B);
  }

  /** scale * B A, f32 [out, in]: what merging adds to the base weight. */
  mergedDelta(): Tensor<'f32'> {
    const [r, inF] = this.A.shape;
    const outF = this.B.shape[0];
    const d = Tensor.empty([outF, inF], 'f32');
    native.matmul(this.B.data, this.A.data, d.data, outF, inF, r, false, false, false, null, NativeDType.f32);
    native.axpby(d.data, null, d.data, d.size, this.scale, 0);
    return d;
  }

  dispose(): void {
    this.A.dispose();
    this.B.dispose();
    this.magnitude?.dispose();
  }
}

/**
 * Several adapters on one layer at inference, none merged into the weights: the first computes the base
 * output and its own delta (fused), each further adapter adds its delta.
 */
export class StackedDelta implements LinearDelta {
  enabled = true;

  constructor(
    readonly first: LinearDelta,
    readonly more: LoraLayer[],
  ) {}

  forward(x: Tensor<'f32'>, layer: Linear, pass?: ForwardPass): Tensor<'f32'> {
    let y = this.first.forward(x, layer, pass);
    for (const l of this.more) y = add(y, l.deltaOnly(x));
    return y;
  }
}

/** Puts `layers` (just attached, each replacing the layer's delta) on top of the deltas that were there before. */
export function stackOnto(
  previous: Map<Linear, LinearDelta | null>,
  layers: Map<string, LoraLayer>,
  model: CausalLM,
): void {
  const byName = new Map(linearModules(model));
  for (const [name, layer] of layers) {
    const lin = byName.get(name)!;
    const before = previous.get(lin) ?? null;
    if (!before) continue;
    lin.delta =
      before instanceof StackedDelta
        ? new StackedDelta(before.first, [...before.more, layer])
        : new StackedDelta(before, [layer]);
  }
}

/** PEFT's rule: a module matches a target when its name is the target or ends with "." + target. */
function matchesTarget(moduleName: string, targets: string[] | string): boolean {
  if (typeof targets === 'string') {
    if (targets === 'all' || targets === 'all-linear') return true;
    return new RegExp(`^(?:${targets})$`).test(moduleName);
  }
  return targets.some((t) => t === 'all' || t === 'all-linear' || moduleName === t || moduleName.endsWith(`.${t}`));
}

function patternValue(pattern: Record<string, number> | undefined, moduleName: string): number | undefined {
  if (!pattern) return undefined;
  for (const [key, value] of Object.entries(pattern)) {
    if (new RegExp(`(.*\\.)?${key}$`).test(moduleName)) return value;
  }
  return undefined;
}

/** Every projection of the model with its PEFT-style module name (model.layers.0.self_attn.q_proj). */
export function linearModules(model: CausalLM): [string, Linear][] {
  const out: [string, Linear][] = [];
  model.layers.forEach((layer, i) => {
    for (const [name, lin] of layer.projections()) out.push([`model.layers.${i}.${name}`, lin]);
  });
  return out;
}

/**
 * The projection names a target list can use: q_proj, k_proj, … down_proj (Phi-3: qkv_proj, gate_up_proj; Qwen3.5
 * adds its linear-attention layers' in_proj_qkv … out_proj).
 */
export function projectionNames(model: CausalLM): string[] {
  return [...new Set(model.layers.flatMap((layer) => layer.projections().map(([name]) => name.split('.').pop()!)))];
}

/**
 * Attaches fresh LoRA layers to every matching projection and returns them by module name. The base
 * model is frozen; A and B want gradients.
 */
export function attachLora(model: CausalLM, s: LoraSettings, rng: Rng): Map<string, LoraLayer> {
  const known = projectionNames(model);
  if (Array.isArray(s.targetModules)) {
    for (const t of s.targetModules) {
      const short = t.split('.').pop()!;
      if (t !== 'all' && t !== 'all-linear' && !known.includes(short)) {
        throw new LmfError('bad_lora_target', `LoRA target "${t}" is not a projection of this model`, {
          key: 'lora_target',
          hint: `use all, or some of: ${known.join(', ')}`,
        });
      }
    }
  }
  const layers = new Map<string, LoraLayer>();
  for (const [name, lin] of linearModules(model)) {
    if (!matchesTarget(name, s.targetModules)) continue;
    const r = patternValue(s.rankPattern, name) ?? s.r;
    const alpha = patternValue(s.alphaPattern, name) ?? s.alpha;
    const bound = 1 / Math.sqrt(lin.inFeatures);
    const layer = persistent(() => {
      const A = Tensor.from(
        Float32Array.from({ length: r * lin.inFeatures }, () => (rng.uniform() * 2 - 1) * bound),
        [r, lin.inFeatures],
        'f32',
      );
      const B = Tensor.zeros([lin.outFeatures, r], 'f32');
      A.requiresGrad = true;
      B.requiresGrad = true;
      const scale = s.useRslora ? alpha / Math.sqrt(r) : alpha / r;
      const layer = new LoraLayer(
        A,
        B,
        scale,
        s.dropout,
        layers.size,
        s.useDora ? Tensor.zeros([lin.outFeatures], 'f32') : null,
      );
      if (layer.magnitude) {
        // with B = 0 the adapted weight is W, so m = ||W||_row starts the model exactly where it was
        layer.magnitude.data.set(layer.adaptedRowNorms(lin.stored));
        layer.magnitude.requiresGrad = true;
      }
      return layer;
    });
    lin.delta = layer;
    layers.set(name, layer);
  }
  if (s.useDora && s.dropout > 0) {
    throw new LmfError('unsupported', 'DoRA with lora_dropout > 0 is not supported yet', {
      key: 'lora_dropout',
      hint: 'set lora_dropout: 0 with use_dora',
    });
  }
  if (layers.size === 0) {
    throw new LmfError('bad_lora_target', `no module matches the LoRA targets ${JSON.stringify(s.targetModules)}`, {
      key: 'lora_target',
      hint: `use all, or some of: ${known.join(', ')}`,
    });
  }
  for (const [, p] of model.namedParameters()) p.requiresGrad = false;
  return layers;
}

/** Switches every LoRA layer on or off (off = the base model, e.g. the reference model of DPO). */
export function setLoraEnabled(layers: Map<string, LoraLayer>, enabled: boolean): void {
  for (const l of layers.values()) l.enabled = enabled;
}

/**
 * Folds adapters into the base weights (W += scale * B A) and detaches them, as PEFT's merge_and_unload:
 * the model then computes the same function without them.
 */
export function mergeLora(model: CausalLM, layers: Map<string, LoraLayer>): void {
  const byName = new Map(linearModules(model));
  for (const [name, layer] of layers) {
    const lin = byName.get(name);
    if (!lin) continue;
    const delta = persistent(() => layer.mergedDelta());
    const w = lin.weight;
    if (layer.magnitude) {
      // DoRA merges to m / ||W + dW||_row * (W + dW): expressed as a delta to add to W
      const norms = layer.adaptedRowNorms(w);
      const base = persistent(() => (w.dtype === 'f32' ? null : w.toF32()));
      const wf = (base ?? w) as Tensor<'f32'>;
      const [outF, inF] = w.shape;
      for (let o = 0; o < outF; o++) {
        const k = layer.magnitude.data[o] / norms[o];
        for (let i = 0; i < inF; i++) {
          const j = o * inF + i;
          delta.data[j] = k * (wf.data[j] + delta.data[j]) - wf.data[j];
        }
      }
      base?.dispose();
    }
    if (w.dtype === 'f32') {
      native.axpby(w.data as Float32Array, delta.data, w.data as Float32Array, w.size, 1, 1);
    } else {
      const full = persistent(() => w.toF32());
      native.axpby(full.data, delta.data, full.data, full.size, 1, 1);
      native.toBf16(full.data, w.data as Uint16Array, w.size);
      full.dispose();
    }
    delta.dispose();
    lin.delta = null;
    layer.dispose();
  }
}

/** Parameters of the modules PEFT's modules_to_save names (a module matches by its name or a ".name" suffix). */
export function savedModuleParameters(model: CausalLM, modules: string[]): [string, Tensor][] {
  return model.namedParameters().filter(([param]) => {
    const module = param.replace(/\.(weight|bias)$/, '');
    return modules.some((m) => module === m || module.endsWith(`.${m}`));
  });
}
