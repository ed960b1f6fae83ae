/**
 * AdamW with PyTorch's semantics (decoupled weight decay, bias-corrected moments) over all trainable
 * parameters in one native call; global-norm clipping is folded into the same pass as a gradient scale.
 * Moments are f32 and long-lived. bf16 shadows of updated weights are refreshed after each step.
 */
import { native } from '../native.js';
import { persistent, Tensor } from '../tensor/tensor.js';

export interface ParamGroup {
  params: Tensor<'f32'>[];
  lr: number;
  weightDecay: number;
}

export interface AdamWSettings {
  beta1: number;
  beta2: number;
  eps: number;
}

/** What the trainer and checkpoints need of an optimiser (AdamW here, ZeRO-1's sharded AdamW in zero.ts). */
export interface Optimizer {
  step: number;
  /** one update; returns the pre-clip global gradient norm */
  update(lrScale: number, maxGradNorm: number | null): number;
  zeroGrad(): void;
  /** the moments of these parameters, whole and in their order (collective under ZeRO-1: complete on rank 0) */
  momentsForSave(params: Tensor<'f32'>[]): { m: Tensor<'f32'>[]; v: Tensor<'f32'>[]; release(): void };
  /** a parameter's moments from a checkpoint, whole */
  loadMoments(param: Tensor<'f32'>, m: Float32Array, v: Float32Array): void;
  dispose(): void;
}

export class AdamW implements Optimizer {
  readonly groups: ParamGroup[];
  readonly settings: AdamWSettings;
  step = 0;
  private params: Tensor<'f32'>[];
  private m: Tensor<'f32'>[];
  private v: Tensor<'f32'>[];

  constructor(groups: ParamGroup[], settings: AdamWSettings = { beta1: 0.9, beta2: 0.999, eps: 1e-8 }) {
    this.groups = groups;
    this.settings = settings;
    this.params = groups.flatMap((g) => g.params);
    this.m = persistent(() => this.params.map((p) => Tensor.zeros(p.shape, 'f32')));
    this.v = persistent(() => this.params.map((p) => Tensor.zeros(p.shape, 'f32')));
  }

  /** Global L2 norm of all gradients (before clipping). Parameters without a gradient count as zero. */
  gradNorm(): number {
    const grads = this.params.filter((p) => p.grad).map((p) => p.grad!.data);
    return Math.sqrt(native.sumSquares(grads));
  }

  /**
   * One update. lrScale multiplies every group's lr (the scheduler); maxGradNorm clips the global norm
   * as torch.nn.utils.clip_grad_norm_ does. Returns the pre-clip gradient norm.
   */
  update(lrScale: number, maxGradNorm: number | null): number {
    const norm = this.gradNorm();
    const clip = maxGradNorm !== null && maxGradNorm > 0 ? Math.min(1, maxGradNorm / (norm + 1e-6)) : 1;
    this.step += 1;
    const lr = new Float64Array(this.params.length);
    const wd = new Float64Array(this.params.length);
    let k = 0;
    for (const g of this.groups) {
      for (let i = 0; i < g.params.length; i++, k++) {
        lr[k] = g.lr * lrScale;
        wd[k] = g.weightDecay;
      }
    }
    const withGrad = this.params.map((p) => p.grad !== null);
    const pick = <T>(xs: T[]) => xs.filter((_, i) => withGrad[i]);
    const s = this.settings;
    native.adamw(
      pick(this.params).map((p) => p.data),
      pick(this.params).map((p) => p.grad!.data),
      pick(this.m).map((t) => t.data),
      pick(this.v).map((t) => t.data),
      Float64Array.from(pick([...lr])),
      Float64Array.from(pick([...wd])),
      s.beta1,
      s.beta2,
      s.eps,
      this.step,
      clip,
    );
    for (const p of this.params) if (p.shadow) native.toBf16(p.data, p.shadow.data, p.size);
    return norm;
  }

  zeroGrad(): void {
    for (const p of this.params) if (p.grad) native.fill(p.grad.data, p.grad.size, 0);
  }

  momentsForSave(params: Tensor<'f32'>[]): { m: Tensor<'f32'>[]; v: Tensor<'f32'>[]; release(): void } {
    const at = params.map((p) => this.indexOf(p));
    return { m: at.map((i) => this.m[i]), v: at.map((i) => this.v[i]), release: () => {} };
  }

  loadMoments(param: Tensor<'f32'>, m: Float32Array, v: Float32Array): void {
    const i = this.indexOf(param);
    this.m[i].data.set(m);
    this.v[i].data.set(v);
  }

  /** a parameter's place among the groups' parameters (the moments' order), which need not be the caller's */
  private indexOf(param: Tensor<'f32'>): number {
    const i = this.params.indexOf(param);
    if (i < 0) throw new Error('AdamW: the tensor is not one of its parameters');
    return i;
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}
