/**
 * Data parallelism's gradient exchange: the trainable parameters cut into buckets of about 25 MB, in reverse
 * order (backward finishes the last layers first). During a step's last micro-batch each bucket is handed to
 * the communication thread as soon as backward has finished its gradients, so the reduction overlaps the rest
 * of backward; finish() sends what is left and waits. Buckets go out strictly in order, so every rank issues
 * the same collectives in the same order whatever its timing.
 *
 * allreduce: every rank ends with the whole summed gradient (plain data parallelism); otherwise each rank ends
 * with the sum of its own chunk of every bucket only (ZeRO-1, which updates just that chunk).
 *
 * Every parameter has a gradient buffer from the start (all ranks reduce the same buffers), but one that has
 * had no gradient on any rank yet has its buffer dropped after each step: the optimiser skips it then, as it
 * skips a parameter without a gradient in one process.
 */
import type { Ticket, World } from '../distributed/world.js';
import { leafGrad, onLeafGradDone } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';

const BUCKET_BYTES = 25 << 20;

export class GradientSync {
  /** parameters of each bucket, in the order they are sent */
  readonly buckets: Tensor<'f32'>[][] = [];
  private readonly bucketOf = new Map<Tensor, number>();
  private readonly finished: Set<Tensor>[];
  private readonly inFlight: Ticket[] = [];
  private next = 0;
  /** parameters given a gradient during this step here, and during any step on any rank */
  private readonly touched = new Set<Tensor>();
  private readonly everTouched = new Set<Tensor>();
  /** buckets sent while backward still ran, over all steps (how much the overlap took) */
  sentEarly = 0;

  constructor(
    private readonly world: World,
    private readonly params: Tensor<'f32'>[],
    private readonly allreduce: boolean,
    bucketBytes = BUCKET_BYTES,
  ) {
    let current: Tensor<'f32'>[] = [];
    let bytes = 0;
    for (let i = params.length - 1; i >= 0; i--) {
      // every rank has every gradient from the start, so that all of them reduce the same buffers
      leafGrad(params[i]);
      current.push(params[i]);
      this.bucketOf.set(params[i], this.buckets.length);
      bytes += params[i].size * 4;
      if (bytes >= bucketBytes || i === 0) {
        this.buckets.push(current);
        current = [];
        bytes = 0;
      }
    }
    this.finished = this.buckets.map(() => new Set());
  }

  /**
   * Call before each micro-batch this rank runs: backward then reports the parameters it gives a gradient, and
   * during the last micro-batch (`last`) each bucket leaves as soon as backward has completed it.
   */
  beginMicro(last: boolean): void {
    onLeafGradDone((leaf) => {
      const b = this.bucketOf.get(leaf);
      if (b === undefined) return;
      this.touched.add(leaf);
      if (!last) return;
      this.finished[b].add(leaf);
      while (this.next < this.buckets.length && this.finished[this.next].size === this.buckets[this.next].length) {
        this.send();
        this.sentEarly++;
      }
    });
  }

  /** Sends the buckets not yet sent and waits for all of them: the step's gradients are then reduced. */
  finish(): void {
    onLeafGradDone(null);
    while (this.next < this.buckets.length) this.send();
    for (const ticket of this.inFlight) this.world.wait(ticket);
    this.inFlight.length = 0;
    this.next = 0;
    for (const f of this.finished) f.clear();
    const had = Float64Array.from(this.params, (p) => (this.everTouched.has(p) || this.touched.has(p) ? 1 : 0));
    this.world.sumScalars(had);
    this.touched.clear();
    this.params.forEach((p, i) => {
      if (had[i] > 0) this.everTouched.add(p);
      else if (p.grad) {
        p.grad.dispose();
        p.grad = null;
      }
    });
  }

  /** True while collectives of a step may still write into gradient buffers (after an error in the step). */
  get busy(): boolean {
    return this.inFlight.length > 0;
  }

  private send(): void {
    const arrays = this.buckets[this.next++].map((p) => leafGrad(p).data);
    this.inFlight.push(this.world.reduce(arrays, this.allreduce));
  }
}
