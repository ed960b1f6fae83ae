/**
 * ZeRO-1: AdamW whose moments are sharded over the ranks. Rank r owns chunk r of every gradient bucket (the
 * chunk GradientSync's reduce-scatter leaves summed there): it keeps the two moments of those elements only,
 * updates those weights, and an all-gather then gives every rank the whole updated weights. The moments are
 * two thirds of the optimiser's f32 state; the weights themselves stay whole on every rank, since the
 * forward pass (and the f32 master of bf16 training) reads them.
 */
import type { World } from '../distributed/world.js';
import { chunkBounds } from '../distributed/world.js';
import { native } from '../native.js';
import { persistent, Tensor } from '../tensor/tensor.js';
import type { AdamWSettings, Optimizer, ParamGroup } from './adamw.js';

/** A run of one parameter's elements inside this rank's chunk of a bucket. */
interface Segment {
  param: number;
  /** element range within the parameter */
  from: number;
  to: number;
  /** the run's start within this rank's moment buffer of the bucket */
  at: number;
  bucket: number;
}

export class ShardedAdamW implements Optimizer {
  step = 0;
  private readonly params: Tensor<'f32'>[];
  private readonly lr: number[];
  private readonly wd: number[];
  private readonly segments: Segment[] = [];
  private readonly m: Tensor<'f32'>[];
  private readonly v: Tensor<'f32'>[];

  constructor(
    private readonly world: World,
    groups: ParamGroup[],
    private readonly settings: AdamWSettings,
    private readonly buckets: Tensor<'f32'>[][],
  ) {
    this.params = groups.flatMap((g) => g.params);
    this.lr = groups.flatMap((g) => g.params.map(() => g.lr));
    this.wd = groups.flatMap((g) => g.params.map(() => g.weightDecay));
    const index = new Map(this.params.map((p, i) => [p, i]));
    const lengths = buckets.map((bucket, b) => {
      const n = bucket.reduce((a, p) => a + p.size, 0);
      const [lo, hi] = chunkBounds(n, world.rank, world.size);
      let offset = 0;
      for (const p of bucket) {
        const from = Math.max(lo, offset),
          to = Math.min(hi, offset + p.size);
        if (from < to)
          this.segments.push({ param: index.get(p)!, from: from - offset, to: to - offset, at: from - lo, bucket: b });
        offset += p.size;
      }
      return hi - lo;
    });
    this.m = persistent(() => lengths.map((n) => Tensor.zeros([n], 'f32')));
    this.v = persistent(() => lengths.map((n) => Tensor.zeros([n], 'f32')));
  }

  update(lrScale: number, maxGradNorm: number | null): number {
    // a parameter that never had a gradient is left alone, as AdamW leaves it
    const segments = this.segments.filter((s) => this.params[s.param].grad);
    const grads = segments.map((s) => this.params[s.param].grad!.data.subarray(s.from, s.to));
    const squares = Float64Array.of(native.sumSquares(grads));
    this.world.sumScalars(squares);
    const norm = Math.sqrt(squares[0]);
    const clip = maxGradNorm !== null && maxGradNorm > 0 ? Math.min(1, maxGradNorm / (norm + 1e-6)) : 1;
    this.step += 1;
    const s = this.settings;
    const moment = (t: Tensor<'f32'>[], seg: Segment) =>
      t[seg.bucket].data.subarray(seg.at, seg.at + seg.to - seg.from);
    native.adamw(
      segments.map((seg) => this.params[seg.param].data.subarray(seg.from, seg.to)),
      grads,
      segments.map((seg) => moment(this.m, seg)),
      segments.map((seg) => moment(this.v, seg)),
      Float64Array.from(segments, (seg) => this.lr[seg.param] * lrScale),
      Float64Array.from(segments, (seg) => this.wd[seg.param]),
      s.beta1,
      s.beta2,
      s.eps,
      this.step,
      clip,
    );
    const tickets = this.buckets.map((bucket) => this.world.gather(bucket.map((p) => p.data)));
    for (const t of tickets) this.world.wait(t);
    for (const p of this.params) if (p.shadow) native.toBf16(p.data, p.shadow.data, p.size);
    return norm;
  }

  zeroGrad(): void {
    for (const p of this.params) if (p.grad) native.fill(p.grad.data, p.grad.size, 0);
  }

  /**
   * Collective: every rank sends its chunks of the moments straight from its own buffers; rank 0 alone holds
   * the whole moments (the others get empty tensors), so a checkpoint costs no rank but the writer more memory.
   */
  momentsForSave(params: Tensor<'f32'>[]): { m: Tensor<'f32'>[]; v: Tensor<'f32'>[]; release(): void } {
    const main = this.world.isMain;
    const gathered = (own: Tensor<'f32'>[]) => {
      if (!main) {
        const tickets = own.map((chunk) => this.world.gatherToRoot([chunk.data], 0));
        for (const t of tickets) this.world.wait(t);
        return [];
      }
      const whole = this.params.map((p) => Tensor.zeros(p.shape, 'f32'));
      for (const seg of this.segments)
        whole[seg.param].data.set(own[seg.bucket].data.subarray(seg.at, seg.at + seg.to - seg.from), seg.from);
      const index = new Map(this.params.map((p, i) => [p, i]));
      const tickets = this.buckets.map((bucket) =>
        this.world.gatherToRoot(
          bucket.map((p) => whole[index.get(p)!].data),
          0,
        ),
      );
      for (const t of tickets) this.world.wait(t);
      return whole;
    };
    const m = gathered(this.m),
      v = gathered(this.v);
    const at = params.map((p) => this.params.indexOf(p));
    return {
      m: main ? at.map((i) => m[i]) : [],
      v: main ? at.map((i) => v[i]) : [],
      release: () => [...m, ...v].forEach((t) => t.dispose()),
    };
  }

  loadMoments(param: Tensor<'f32'>, m: Float32Array, v: Float32Array): void {
    const i = this.params.indexOf(param);
    for (const seg of this.segments.filter((s) => s.param === i)) {
      this.m[seg.bucket].data.set(m.subarray(seg.from, seg.to), seg.at);
      this.v[seg.bucket].data.set(v.subarray(seg.from, seg.to), seg.at);
    }
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}
