/**
 * The leading singular triplets of a large matrix by randomized subspace iteration (Halko, Martinsson and
 * Tropp), as torch.svd_lowrank computes them: a Gaussian sketch of the column space, power iterations with
 * re-orthonormalisation, then the exact SVD of the small projection. The big products run in oneDNN; the small
 * dense algebra (orthonormalisation, a q×q symmetric eigenproblem) in f64 here.
 */
import { native, NativeDType } from '../native.js';
import type { Rng } from './random.js';

export interface LowRankSvd {
  /** left singular vectors, [m, r] */
  U: Float32Array;
  /** singular values, descending */
  S: Float64Array;
  /** right singular vectors as rows, [r, n] */
  Vh: Float32Array;
}

/** Iterations the exact mode may take; its values settle to `settled` (relative to the largest) well before on
 * trained weights, whose spectra fall off, and stop here on flat (random) ones. */
const maxSettleIterations = 100;
const settled = 1e-6;

/**
 * W ≈ U diag(S) Vh for W [m, n] (row-major f32) and rank r. `iterations`: power iterations on a sketch of r
 * columns (torch.svd_lowrank's niter); null: a sketch of 2r + 8 columns iterated until the r values settle to
 * 1e-6 of the largest (the exact decomposition's leading part).
 */
export function lowRankSvd(w: Float32Array, m: number, n: number, r: number, iterations: number | null, rng: Rng) {
  const q = iterations === null ? Math.min(2 * r + 8, m, n) : r;
  const sketch = Float32Array.from({ length: n * q }, () => rng.normal());
  const y = new Float32Array(m * q);
  const z = new Float32Array(n * q);
  product(w, sketch, y, m, q, n, false);
  orthonormalize(y, m, q);
  let previous: Float64Array | null = null;
  for (let i = 0; iterations === null ? i < maxSettleIterations : i < iterations; i++) {
    product(w, y, z, n, q, m, true); // Wᵀ Q
    orthonormalize(z, n, q);
    product(w, z, y, m, q, n, false); // W Z
    orthonormalize(y, m, q);
    if (iterations === null) {
      const values = projectedGram(w, y, m, n, q).S.subarray(0, r);
      if (previous && values.every((s, j) => Math.abs(s - previous![j]) <= settled * values[0])) break;
      previous = values;
    }
  }
  const full = projectedSvd(w, y, m, n, q);
  const U = new Float32Array(m * r);
  for (let i = 0; i < m; i++) for (let j = 0; j < r; j++) U[i * r + j] = full.U[i * q + j];
  return { U, S: full.S.slice(0, r), Vh: full.Vh.slice(0, r * n) } satisfies LowRankSvd;
}

/** c [rows, cols] = (a or aᵀ) · b, where a is the matrix W stored [m, n]. */
function product(a: Float32Array, b: Float32Array, c: Float32Array, rows: number, cols: number, k: number, t: boolean) {
  native.matmul(a, b, c, rows, cols, k, t, false, false, null, NativeDType.f32);
}

/** B = Qᵀ W [q, n] for the orthonormal basis Q [m, q], its Gram matrix's eigenvectors and B's singular values. */
function projectedGram(w: Float32Array, basis: Float32Array, m: number, n: number, q: number) {
  const b = new Float32Array(q * n);
  native.matmul(basis, w, b, q, n, m, true, false, false, null, NativeDType.f32);
  const gram = new Float64Array(q * q);
  for (let i = 0; i < q; i++) {
    for (let j = i; j < q; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += b[i * n + k] * b[j * n + k];
      gram[i * q + j] = gram[j * q + i] = s;
    }
  }
  const { values, vectors } = symmetricEigen(gram, q);
  const order = [...values.keys()].sort((x, y) => values[y] - values[x]);
  const S = Float64Array.from(order, (i) => Math.sqrt(Math.max(values[i], 0)));
  return { b, vectors, order, S };
}

/** The SVD of W restricted to the orthonormal basis Q [m, q]: B = Qᵀ W = P diag(S) Vh, U = Q P. */
function projectedSvd(w: Float32Array, basis: Float32Array, m: number, n: number, q: number) {
  const { b, vectors, order, S } = projectedGram(w, basis, m, n, q);
  const Vh = new Float32Array(q * n);
  const row = new Float64Array(n);
  order.forEach((e, j) => {
    row.fill(0);
    for (let i = 0; i < q; i++) {
      const p = vectors[i * q + e];
      for (let k = 0; k < n; k++) row[k] += p * b[i * n + k];
    }
    const inv = S[j] > 0 ? 1 / S[j] : 0;
    for (let k = 0; k < n; k++) Vh[j * n + k] = row[k] * inv;
  });
  const U = new Float32Array(m * q);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < q; j++) {
      let s = 0;
      for (let k = 0; k < q; k++) s += basis[i * q + k] * vectors[k * q + order[j]];
      U[i * q + j] = s;
    }
  }
  return { U, S, Vh };
}

/**
 * Orthonormal columns in place: classical Gram-Schmidt run twice per column (CGS2, as orthogonal as modified
 * Gram-Schmidt) in f64 over the row-major matrix, each sweep one pass over the rows.
 */
export function orthonormalize(x: Float32Array, rows: number, cols: number): void {
  const a = Float64Array.from(x);
  const dots = new Float64Array(cols);
  for (let j = 0; j < cols; j++) {
    for (let pass = 0; pass < 2; pass++) {
      dots.fill(0);
      for (let i = 0; i < rows; i++) {
        const row = i * cols;
        const v = a[row + j];
        for (let p = 0; p < j; p++) dots[p] += a[row + p] * v;
      }
      for (let i = 0; i < rows; i++) {
        const row = i * cols;
        let s = a[row + j];
        for (let p = 0; p < j; p++) s -= dots[p] * a[row + p];
        a[row + j] = s;
      }
    }
    let norm = 0;
    for (let i = 0; i < rows; i++) norm += a[i * cols + j] ** 2;
    // a column the others already span (rank below the sketch) becomes zero rather than noise
    const inv = norm > 1e-300 ? 1 / Math.sqrt(norm) : 0;
    for (let i = 0; i < rows; i++) a[i * cols + j] *= inv;
  }
  x.set(a);
}

/** Eigen-decomposition of a symmetric n×n matrix by cyclic Jacobi rotations: A = V diag(values) Vᵀ. */
export function symmetricEigen(matrix: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let diagonal = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        if (i === j) diagonal += a[i * n + j] ** 2;
        else off += a[i * n + j] ** 2;
      }
    }
    if (off <= 1e-30 * diagonal) break;
    for (let p = 0; p < n - 1; p++) {
      for (let k = p + 1; k < n; k++) {
        const apk = a[p * n + k];
        if (apk === 0) continue;
        const theta = (a[k * n + k] - a[p * n + p]) / (2 * apk);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let i = 0; i < n; i++) {
          const aip = a[i * n + p];
          const aik = a[i * n + k];
          a[i * n + p] = c * aip - s * aik;
          a[i * n + k] = s * aip + c * aik;
        }
        for (let i = 0; i < n; i++) {
          const api = a[p * n + i];
          const aki = a[k * n + i];
          a[p * n + i] = c * api - s * aki;
          a[k * n + i] = s * api + c * aki;
        }
        for (let i = 0; i < n; i++) {
          const vip = v[i * n + p];
          const vik = v[i * n + k];
          v[i * n + p] = c * vip - s * vik;
          v[i * n + k] = s * vip + c * vik;
        }
      }
    }
  }
  return { values: Float64Array.from({ length: n }, (_, i) => a[i * n + i]), vectors: v };
}
