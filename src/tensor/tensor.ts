/**
 * Tensor: a shape, a dtype and a buffer of native memory that JavaScript reads through a typed array.
 * Native memory is invisible to the garbage collector, so tensors made inside a StepScope are freed when
 * the scope ends; long-lived tensors (parameters, optimizer state) are made outside any scope.
 */
import { native } from '../native.js';
import { acquire, release } from './pool.js';
import { bytesPerElement, type DType, type Storage } from './dtype.js';
import type { GradNode } from './autograd.js';
import { pushAll } from '../util/arrays.js';

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export class Tensor<D extends DType = DType> {
  readonly shape: Shape;
  readonly dtype: D;
  readonly data: Storage<D>;
  /** Set on leaves (parameters) that collect a gradient, and on results of ops that depend on one. */
  requiresGrad = false;
  /** Accumulated gradient of a leaf, f32, same shape. */
  grad: Tensor<'f32'> | null = null;
  /** The op that produced this tensor, when its gradient is wanted. */
  node: GradNode | null = null;
  /** bf16 copy of an f32 weight that matmuls use in bf16 mode; the optimizer refreshes it after each step. */
  shadow: Tensor<'bf16'> | null = null;
  private disposed = false;

  private constructor(shape: Shape, dtype: D, data: Storage<D>) {
    this.shape = shape;
    this.dtype = dtype;
    this.data = data;
  }

  get size(): number {
    return this.data.length;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** A new tensor in native memory; zeroed when asked. Tracked by the current scope, if any. */
  static empty<D extends DType>(shape: Shape, dtype: D, zero = false): Tensor<D> {
    const n = numel(shape);
    const buffer = acquire(n * bytesPerElement[dtype], zero);
    const data = (
      dtype === 'f32'
        ? new Float32Array(buffer, 0, n)
        : dtype === 'bf16'
          ? new Uint16Array(buffer, 0, n)
          : new Int32Array(buffer, 0, n)
    ) as Storage<D>;
    const t = new Tensor(shape, dtype, data);
    currentScope()?.track(t);
    return t;
  }

  static zeros<D extends DType>(shape: Shape, dtype: D): Tensor<D> {
    return Tensor.empty(shape, dtype, true);
  }

  /** Copies values into a new native tensor (numbers are rounded to the dtype). */
  static from<D extends DType>(values: ArrayLike<number>, shape: Shape, dtype: D): Tensor<D> {
    if (values.length !== numel(shape)) throw new Error(`Tensor.from: ${values.length} values for shape [${shape}]`);
    const t = Tensor.empty(shape, dtype);
    if (dtype === 'bf16') {
      const tmp = Tensor.empty(shape, 'f32');
      tmp.data.set(values);
      native.toBf16(tmp.data, t.data as Uint16Array, t.size);
      tmp.dispose();
    } else {
      (t.data as Float32Array | Int32Array).set(values);
    }
    return t;
  }

  /** Same memory, another shape with the same number of elements. Not owned: disposing it is a no-op. */
  view(shape: Shape): Tensor<D> {
    if (numel(shape) !== this.size) throw new Error(`view: [${this.shape}] cannot be viewed as [${shape}]`);
    const t = new Tensor(shape, this.dtype, this.data);
    t.disposed = true; // the owner frees the memory
    return t;
  }

  /** f32 copy of the values (converting bf16). */
  toF32(): Tensor<'f32'> {
    const out = Tensor.empty(this.shape, 'f32');
    if (this.dtype === 'bf16') native.toF32(this.data as Uint16Array, out.data, this.size);
    else out.data.set(this.data);
    return out;
  }

  /** bf16 copy of an f32 tensor. */
  toBf16(): Tensor<'bf16'> {
    if (this.dtype !== 'f32') throw new Error(`toBf16: expected f32, got ${this.dtype}`);
    const out = Tensor.empty(this.shape, 'bf16');
    native.toBf16(this.data as Float32Array, out.data, this.size);
    return out;
  }

  /** Values as plain f32 numbers in a new (garbage-collected) array, for tests and files. */
  toArray(): Float32Array {
    if (this.dtype === 'f32') return Float32Array.from(this.data as Float32Array);
    if (this.dtype === 'i32') return Float32Array.from(this.data as Int32Array);
    const out = new Float32Array(this.size);
    const tmp = this.toF32();
    out.set(tmp.data);
    tmp.dispose();
    return out;
  }

  /** Returns the memory to the pool now (with the gradient and shadow). Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    release(this.data.buffer as ArrayBuffer);
    this.grad?.dispose();
    this.shadow?.dispose();
  }
}

/**
 * Owns every tensor made while it is the current scope, and frees them all when it ends, except those
 * passed to keep(). One training step runs in one scope, so memory per step is bounded and released
 * at a known point.
 */
export class StepScope {
  private tensors: Tensor[] = [];
  private kept = new Set<Tensor>();

  track(t: Tensor): void {
    this.tensors.push(t);
  }

  keep<T extends Tensor>(t: T): T {
    this.kept.add(t);
    return t;
  }

  dispose(): void {
    for (const t of this.tensors) if (!this.kept.has(t)) t.dispose();
    this.tensors = [];
    this.kept.clear();
  }
}

const scopes: StepScope[] = [];

export function currentScope(): StepScope | undefined {
  return scopes[scopes.length - 1];
}

/** Runs fn in a new scope; tensors it makes are freed at the end, except the ones it returns in `keep`. */
export function withScope<R>(fn: (scope: StepScope) => R): R {
  const scope = new StepScope();
  scopes.push(scope);
  try {
    return fn(scope);
  } finally {
    scopes.pop();
    scope.dispose();
  }
}

/** Runs fn with no scope: what it makes lives until disposed (parameters, optimizer state). */
export function persistent<R>(fn: () => R): R {
  const saved = scopes.splice(0, scopes.length);
  try {
    return fn();
  } finally {
    pushAll(scopes, saved);
  }
}
