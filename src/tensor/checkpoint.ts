/**
 * Gradient checkpointing: a block's forward pass keeps only its input and output; its backward runs the block
 * again with the tape on and back-propagates through that recomputation. Memory per layer drops to one
 * activation tensor, at the price of one more forward pass per layer. The block must compute the same values
 * twice (dropout masks here come from the step counter, so they do).
 */
import { backward, isRecording, noGrad, type Grad } from './autograd.js';
import { Tensor, withScope } from './tensor.js';

export function checkpointed(x: Tensor<'f32'>, block: (x: Tensor<'f32'>) => Tensor<'f32'>): Tensor<'f32'> {
  if (!isRecording()) return block(x);
  // forward without the tape, its intermediate tensors freed at once; only the output is kept
  const out = Tensor.empty(x.shape, 'f32');
  withScope(() => out.data.set(noGrad(() => block(x)).data));
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
        const y = block(xr);
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
