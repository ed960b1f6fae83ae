/**
 * Gradient checkpointing: a block's forward pass keeps only its input and output (and what the block chooses
 * to keep, such as attention's output); its backward runs the block again with the tape on and
 * back-propagates through that recomputation. Memory per layer drops to about one activation tensor, at the
 * price of a second forward pass. The block must compute the same values twice (dropout masks here come from
 * the step counter, so they do).
 */
import { backward, isRecording, noGrad, type Grad } from './autograd.js';
import { currentScope, Tensor, withScope } from './tensor.js';

/** Which run of the block this is, and how the first run keeps a tensor for the second. */
export interface CheckpointRun {
  recompute: boolean;
  /** keeps a tensor made in the first run alive until the step ends (the recomputation may reuse it) */
  keep<T extends Tensor>(t: T): T;
}

export function checkpointed(
  x: Tensor<'f32'>,
  block: (x: Tensor<'f32'>, run: CheckpointRun) => Tensor<'f32'>,
): Tensor<'f32'> {
  const outer = currentScope();
  if (!isRecording() || !outer) return block(x, { recompute: false, keep: (t) => t });
  // forward without the tape, its intermediate tensors freed at once; only the output is kept
  const out = Tensor.empty(x.shape, 'f32');
  withScope((inner) => {
    const keep = <T extends Tensor>(t: T): T => {
      inner.keep(t);
      outer.track(t);
      return t;
    };
    out.data.set(noGrad(() => block(x, { recompute: false, keep })).data);
  });
  out.requiresGrad = true;
  out.node = {
    op: 'checkpoint',
    inputs: [x],
    backward(g: Grad, needs: readonly boolean[]): (Grad | null)[] {
      let dx: Grad | null = null;
      withScope(() => {
        const xr = Tensor.empty(x.shape, 'f32');
        xr.data.set(x.data);
        xr.requiresGrad = needs[0];
        const y = block(xr, { recompute: true, keep: (t) => t });
        // parameters (norms, weights, adapters) accumulate into their own grads; the input's is handed back
        if (y.requiresGrad) backward(y, g);
        dx = xr.grad; // long-lived (a leaf's), so it outlives this scope
        xr.grad = null;
      });
      return [needs[0] ? (dx ?? Tensor.zeros(x.shape, 'f32')) : null];
    },
  };
  return out;
}
