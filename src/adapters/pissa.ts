/**
 * PiSSA (principal singular values and vectors adaptation), as PEFT's init_lora_weights "pissa" and
 * "pissa_niter_N": the adapter starts as the r leading singular directions of each weight, A = √(S/scale) Vh,
 * B = U √(S/scale), and the base keeps the residual W − scale·B·A, so the model's function is unchanged. The
 * decomposition is seeded by the module's name, so loading a PiSSA adapter recomputes the very residual its
 * training used. A trained PiSSA adapter converts to a plain LoRA of twice the rank for the original weights:
 * [A; A₀] and [B, −B₀] add scale·(B·A − B₀·A₀).
 */
import { LmfError } from '../errors.js';
import { native } from '../native.js';
import type { Linear } from '../nn/linear.js';
import { lowRankSvd } from '../tensor/low-rank-svd.js';
import { Rng } from '../tensor/random.js';
import { persistent, Tensor } from '../tensor/tensor.js';
import type { CausalLM } from '../models/registry.js';
import { linearModules, LoraLayer, type LoraSettings } from './lora.js';

/** PEFT's init_lora_weights value for PiSSA with these power iterations (-1: the exact decomposition). */
export function pissaInitName(iterations: number): string {
  return iterations === -1 ? 'pissa' : `pissa_niter_${iterations}`;
}

/** The power iterations an init_lora_weights value asks for (null: exact), or undefined when it is not PiSSA. */
export function pissaIterations(init: LoraSettings['initLoraWeights']): number | null | undefined {
  if (typeof init !== 'string' || !init.startsWith('pissa')) return undefined;
  if (init === 'pissa') return null;
  const m = /^pissa_niter_(\d+)$/.exec(init);
  if (!m)
    throw new LmfError('bad_value', `init_lora_weights "${init}" is not a PiSSA setting`, {
      key: 'init_lora_weights',
      hint: 'pissa or pissa_niter_N',
    });
  return Number(m[1]);
}

/** A stable seed from a module name, so training and loading decompose each weight alike. */
function seedOf(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Sets the layer's A and B to the weight's principal part and leaves the residual in the base weight. */
export function applyPissa(name: string, layer: LoraLayer, lin: Linear, iterations: number | null): void {
  const r = layer.rank;
  const [outF, inF] = lin.weight.shape;
  if (r > Math.min(outF, inF))
    throw new LmfError('bad_value', `PiSSA rank ${r} exceeds ${name}'s smaller dimension ${Math.min(outF, inF)}`, {
      key: 'lora_rank',
    });
  const weight = persistent(() => (lin.weight.dtype === 'f32' ? (lin.weight as Tensor<'f32'>) : lin.weight.toF32()));
  const svd = lowRankSvd(weight.data, outF, inF, r, iterations, new Rng(seedOf(name)));
  for (let j = 0; j < r; j++) {
    const k = Math.sqrt(svd.S[j] / layer.scale);
    for (let i = 0; i < inF; i++) layer.A.data[j * inF + i] = k * svd.Vh[j * inF + i];
    for (let o = 0; o < outF; o++) layer.B.data[o * r + j] = svd.U[o * r + j] * k;
  }
  const principal = persistent(() => layer.mergedDelta());
  native.axpby(principal.data, weight.data, weight.data, weight.size, -1, 1);
  principal.dispose();
  // the residual takes the weight's own precision, as PEFT casts it back
  if (weight !== lin.weight) {
    native.toBf16(weight.data, lin.weight.data as Uint16Array, weight.size);
    weight.dispose();
  }
}

/** PiSSA on every adapted projection of the model (fresh layers, or ones about to be filled from a file). */
export function initPissa(model: CausalLM, layers: Map<string, LoraLayer>, iterations: number | null): void {
  const byName = new Map(linearModules(model));
  for (const [name, layer] of layers) {
    if (layer.magnitude)
      throw new LmfError('unsupported', 'PiSSA with DoRA is not supported', { key: 'pissa_init', hint: 'use one' });
    applyPissa(name, layer, byName.get(name)!, iterations);
  }
}

/** A and B as the layer holds them now (PiSSA's starting point, kept for the conversion at the end). */
export function snapshotLayers(layers: Map<string, LoraLayer>): Map<string, { A: Float32Array; B: Float32Array }> {
  return new Map([...layers].map(([name, l]) => [name, { A: l.A.data.slice(), B: l.B.data.slice() }]));
}

/**
 * The trained PiSSA adapter as a plain LoRA on the original weights: rank 2r, alpha doubled (rsLoRA: times √2)
 * so that the scale stays, A = [A; A₀], B = [B, −B₀]. The caller disposes the returned layers.
 */
export function pissaToLora(
  layers: Map<string, LoraLayer>,
  initial: Map<string, { A: Float32Array; B: Float32Array }>,
  s: LoraSettings,
): { layers: Map<string, LoraLayer>; settings: LoraSettings } {
  const out = new Map<string, LoraLayer>();
  for (const [name, l] of layers) {
    const start = initial.get(name);
    if (!start) throw new LmfError('internal', `no PiSSA starting point for ${name}`);
    const [r, inF] = l.A.shape;
    const outF = l.B.shape[0];
    const [A, B] = persistent(() => [Tensor.empty([2 * r, inF], 'f32'), Tensor.empty([outF, 2 * r], 'f32')]);
    A.data.set(l.A.data);
    A.data.set(start.A, r * inF);
    for (let o = 0; o < outF; o++) {
      for (let j = 0; j < r; j++) {
        B.data[o * 2 * r + j] = l.B.data[o * r + j];
        B.data[o * 2 * r + r + j] = -start.B[o * r + j];
      }
    }
    out.set(name, new LoraLayer(A, B, l.scale, l.dropoutP, out.size));
  }
  const double = (p?: Record<string, number>) => p && Object.fromEntries(Object.entries(p).map(([k, v]) => [k, 2 * v]));
  const alphaFactor = s.useRslora ? Math.SQRT2 : 2;
  return {
    layers: out,
    settings: {
      ...s,
      r: 2 * s.r,
      alpha: alphaFactor * s.alpha,
      rankPattern: double(s.rankPattern),
      alphaPattern:
        s.alphaPattern && Object.fromEntries(Object.entries(s.alphaPattern).map(([k, v]) => [k, alphaFactor * v])),
      initLoraWeights: true,
    },
  };
}
