/**
 * Reverse-mode automatic differentiation over a recorded graph. Each op that has a differentiable input
 * records a GradNode with a backward closure; backward() visits the nodes from the loss in reverse
 * topological order. Gradients of intermediate tensors are freed as soon as their node has used them.
 * Leaves (parameters) accumulate into a long-lived `grad` tensor, which ops may also write directly
 * (accumulateInto) to avoid a temporary the size of the weight.
 */
import { native } from '../native.js';
import { persistent, Tensor } from './tensor.js';

export type Grad = Tensor<'f32'>;

export interface GradNode {
  op: string;
  inputs: readonly Tensor[];
  /** Gradients for each input, or null where the input needs none or the op wrote a leaf's grad itself. */
  backward(grad: Grad, needs: readonly boolean[]): (Grad | null)[];
}

let gradEnabled = true;
let leafDone: ((leaf: Tensor) => void) | null = null;

/**
 * While set, backward() calls fn for each parameter as soon as its gradient from that backward is complete
 * (no node still to run reads it): data-parallel training starts reducing those gradients while backward goes on.
 */
export function onLeafGradDone(fn: ((leaf: Tensor) => void) | null): void {
  leafDone = fn;
}

/** Runs fn without recording gradients (inference, evaluation, reference models). */
export function noGrad<R>(fn: () => R): R {
  const saved = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = saved;
  }
}

/** True while ops record their backward (outside noGrad). */
export function isRecording(): boolean {
  return gradEnabled;
}

/** True when an op with these inputs must record its backward. */
export function needsGrad(inputs: readonly (Tensor | null | undefined)[]): boolean {
  return gradEnabled && inputs.some((t) => t?.requiresGrad === true);
}

/** Attaches a backward to an op result when any input wants a gradient. */
export function record<T extends Tensor>(
  out: T,
  op: string,
  inputs: readonly Tensor[],
  backward: GradNode['backward'],
): T {
  if (!needsGrad(inputs)) return out;
  out.requiresGrad = true;
  out.node = { op, inputs, backward };
  return out;
}

/** A leaf's gradient buffer, made zeroed and long-lived on first use. */
export function leafGrad(t: Tensor): Grad {
  if (!t.grad) t.grad = persistent(() => Tensor.zeros(t.shape, 'f32'));
  return t.grad;
}

/**
 * Where an op adds an input's gradient: straight into a leaf's long-lived grad (the op then returns null for
 * it), or into a fresh zeroed tensor for a non-leaf (the op returns that tensor).
 */
export function gradTarget(t: Tensor): { grad: Grad; result: Grad | null } {
  if (isLeaf(t)) return { grad: leafGrad(t), result: null };
  const grad = Tensor.zeros(t.shape, 'f32');
  return { grad, result: grad };
}

/** True for a parameter (a tensor that wants a gradient and was not produced by an op). */
export function isLeaf(t: Tensor): boolean {
  return t.requiresGrad && t.node === null;
}

function accumulate(into: Grad, g: Grad): void {
  native.axpby(into.data, g.data, into.data, into.size, 1, 1);
}

function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length) {
    const [t, expanded] = stack.pop()!;
    if (expanded) {
      order.push(t);
      continue;
    }
    if (seen.has(t) || !t.node) continue;
    seen.add(t);
    stack.push([t, true]);
    for (const i of t.node.inputs) if (i.node && !seen.has(i)) stack.push([i, false]);
  }
  return order; // inputs before the tensors made from them
}

/** Back-propagates from `root` (a scalar unless `seed` is given). */
export function backward(root: Tensor, seed?: Grad): void {
  if (!root.requiresGrad)
    throw new Error('backward: the tensor does not depend on any parameter that needs a gradient');
  const grads = new Map<Tensor, Grad>();
  const ownSeed = !seed;
  const start = seed ?? Tensor.from(new Float32Array(root.size).fill(1), root.shape, 'f32');
  if (!root.node) {
    accumulate(leafGrad(root), start);
    if (ownSeed) start.dispose();
    leafDone?.(root);
    return;
  }
  grads.set(root, start);
  const order = topologicalOrder(root);
  const finishedAt = leafDone ? lastUses(order) : null;
  for (let n = order.length - 1; n >= 0; n--) {
    propagate(order[n]);
    for (const leaf of finishedAt?.get(n) ?? []) leafDone!(leaf);
  }
  for (const g of grads.values()) g.dispose();

  function propagate(out: Tensor): void {
    const g = grads.get(out);
    if (!g) return;
    grads.delete(out);
    const node = out.node!;
    const needs = node.inputs.map((i) => i.requiresGrad);
    const results = node.backward(g, needs);
    const handedOut = new Set<Grad>();
    node.inputs.forEach((input, k) => {
      let r = results[k];
      if (!r || !needs[k]) return;
      if (handedOut.has(r)) r = r.toF32() as Grad; // one buffer must not serve two inputs
      if (input.node === null) {
        accumulate(leafGrad(input), r);
        if (r !== g) r.dispose();
        return;
      }
      const existing = grads.get(input);
      if (existing) {
        accumulate(existing, r);
        if (r !== g) r.dispose();
      } else {
        grads.set(input, r);
        handedOut.add(r);
      }
    });
    if (!handedOut.has(g) && (g !== start || ownSeed)) g.dispose();
  }
}

/** For each node index, the parameters no node below it reads: their gradient is complete once it is processed. */
function lastUses(order: Tensor[]): Map<number, Tensor[]> {
  const first = new Map<Tensor, number>();
  order.forEach((t, n) => {
    for (const input of t.node!.inputs) if (isLeaf(input) && !first.has(input)) first.set(input, n);
  });
  const at = new Map<number, Tensor[]>();
  for (const [leaf, n] of first) at.set(n, [...(at.get(n) ?? []), leaf]);
  return at;
}
