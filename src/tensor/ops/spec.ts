/** What every op with a backward declares so that tests can check it without knowing it. */
import type { Shape, Tensor } from '../tensor.js';

export interface OpSpec {
  /** Shapes of the f32 inputs of a small example; each is differentiated in the gradient check. */
  inputs: Shape[];
  /** Runs the op (integer arguments such as ids or positions are fixed inside). */
  apply(inputs: Tensor<'f32'>[]): Tensor<'f32'>;
  /** The same computation in plain double-precision JavaScript, written for clarity. */
  reference(inputs: Float64Array[]): Float64Array;
}

/** Deterministic pseudo-random ints for examples. */
export function exampleInts(n: number, max: number, seed = 7): number[] {
  const out: number[] = [];
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out.push(s % max);
  }
  return out;
}
