/**
 * bitsandbytes' weight formats, bit for bit as its CUDA kernels write them (the "-bnb-4bit" checkpoints people
 * share were quantized on GPUs): 4-bit NF4/FP4 in blocks of 64 with an f32 absmax each, two codes per byte (the
 * first in the high nibble); double quantization of the absmax values (their mean taken off, then 8-bit dynamic
 * codes in blocks of 256); 8-bit LLM.int8 rows (the weight rounded to fp16, then a row absmax and
 * round-half-even int8). Dequantisation (native/src/quant.cc, through tensor/quantized.ts) follows bnb's formulas
 * step by step in f32.
 *
 * Where bnb's CUDA build uses a fast-math reciprocal we use the IEEE one: a code can differ only for a value
 * within an ulp of a threshold. The double-quantization offset is the mean of the absmax values summed in f64 and
 * rounded once (torch's f32 reduction order cannot be reproduced; loading uses the stored offset).
 */
import { native } from '../../native.js';
import { f16BitsToF32, f32ToF16Bits } from '../../tensor/dtype.js';

export type FourBitType = 'nf4' | 'fp4';

const f = Math.fround;

/** bnb's NF4 code table, code order 0..15. */
export const nf4Table = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/** bnb's FP4 code table (sign bit 3, two exponent bits, one mantissa bit, divided by 12). */
export const fp4Table = Float32Array.from([0, 0.0625, 8, 12, 4, 6, 2, 3, 0, -0.0625, -8, -12, -4, -6, -2, -3], (v) =>
  f(v / 12),
);

export interface FourBitBlocks {
  /** two codes per byte, the even element in the high nibble; [(n + 1) / 2] */
  packed: Uint8Array;
  /** one f32 absmax per block of `blocksize` consecutive (row-major) values */
  absmax: Float32Array;
}

/**
 * Blockwise 4-bit quantisation of `w` (any shape, flattened row-major; f32 values, or bf16 bits), natively and on
 * every thread (native/src/quant.cc): NF4 takes the code below each f32 midpoint of neighbouring table values (a
 * value on one goes to the lower code), FP4 bnb's own decision tree (its thresholds are not all exact midpoints);
 * an all-zero block's 0 · ∞ is NaN and gets code 0, as on CUDA; an odd count pads the last low nibble with the
 * code of 0.0.
 */
export function quantize4bit(w: Float32Array | Uint16Array, type: FourBitType, blocksize = 64): FourBitBlocks {
  const n = w.length;
  const absmax = new Float32Array(Math.ceil(n / blocksize));
  const packed = new Uint8Array((n + 1) >> 1);
  native.quantize4bit(
    w,
    w instanceof Uint16Array ? 1 : 0,
    n,
    type === 'fp4' ? 1 : 0,
    blocksize,
    nf4Table,
    packed,
    absmax,
  );
  return { packed, absmax };
}

/**
 * bnb's signed 8-bit dynamic map (create_dynamic_map(signed=True)): for each decade 10^(i-6), i = 0..6, the
 * means of neighbouring points of linspace(0.1, 1, 2^i + 1) times the decade, both signs; then 0 and 1; sorted.
 */
export const dynamicMap: Float32Array = (() => {
  const values: number[] = [0, 1];
  for (let i = 0; i < 7; i++) {
    const n = 2 ** i + 1;
    // torch's linspace in f32: start + step·k for the first half, end - step·(n-1-k) for the rest, each one FMA
    const step = f(f(1 - f(0.1)) / (n - 1));
    const points = Array.from({ length: n }, (_, k) =>
      k < n >> 1 ? f(step * k + f(0.1)) : f(-step * (n - 1 - k) + 1),
    );
    const decade = f(10 ** (i - 6));
    for (let k = 0; k + 1 < n; k++) {
      const v = f(decade * f(f(points[k] + points[k + 1]) / 2));
      values.push(v, -v);
    }
  }
  return Float32Array.from(values).sort();
})();

const dynamicMidpoints = Float32Array.from({ length: 255 }, (_, j) => f(f(dynamicMap[j] + dynamicMap[j + 1]) * 0.5));

/** The nearest dynamic-map code of x in [-1, 1]; a value on a midpoint goes to the even code (CUDA's search). */
export function dynamicCode(x: number): number {
  if (Number.isNaN(x)) return 0;
  let lo = 0;
  let hi = 255;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x > dynamicMidpoints[mid]) lo = mid + 1;
    else hi = mid;
  }
  // x in (m[lo-1], m[lo]]: code lo, unless x sits exactly on m[lo], where the even neighbour wins
  if (lo < 255 && x === dynamicMidpoints[lo] && lo & 1) return lo + 1;
  return lo;
}

export interface NestedAbsmax {
  /** 8-bit codes of absmax − offset, one per 4-bit block */
  codes: Uint8Array;
  /** f32 absmax of those residuals per block of 256 */
  nestedAbsmax: Float32Array;
  offset: number;
  nestedBlocksize: number;
}

/** Double quantisation of the 4-bit blocks' absmax values. */
export function quantizeAbsmax(absmax: Float32Array, nestedBlocksize = 256): NestedAbsmax {
  let sum = 0;
  for (const a of absmax) sum += a;
  const offset = f(sum / absmax.length);
  const residual = new Float32Array(absmax.length);
  for (let i = 0; i < absmax.length; i++) residual[i] = absmax[i] - offset;
  const blocks = Math.ceil(residual.length / nestedBlocksize);
  const nestedAbsmax = new Float32Array(blocks);
  const codes = new Uint8Array(residual.length);
  for (let b = 0; b < blocks; b++) {
    const start = b * nestedBlocksize;
    const end = Math.min(start + nestedBlocksize, residual.length);
    let m = 0;
    for (let i = start; i < end; i++) m = Math.max(m, Math.abs(residual[i]));
    nestedAbsmax[b] = m;
    const inv = f(1 / m);
    for (let i = start; i < end; i++) codes[i] = dynamicCode(f(residual[i] * inv));
  }
  return { codes, nestedAbsmax, offset, nestedBlocksize };
}

export interface Int8Rows {
  /** int8 codes [out, in] */
  codes: Int8Array;
  /** row absmax of the fp16-rounded weight [out] */
  scales: Float32Array;
}

/** LLM.int8's weight quantisation: rows of the fp16-rounded weight scaled by 127 / absmax, rounded half to even. */
export function quantizeInt8Rows(w: Float32Array, rows: number, cols: number): Int8Rows {
  const codes = new Int8Array(rows * cols);
  const scales = new Float32Array(rows);
  const half = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let c = 0; c < cols; c++) {
      half[c] = f16BitsToF32(f32ToF16Bits(w[r * cols + c]));
      m = Math.max(m, Math.abs(half[c]));
    }
    scales[r] = m;
    const s = f(127 / m);
    for (let c = 0; c < cols; c++) {
      const v = f(half[c] * s);
      codes[r * cols + c] = Number.isNaN(v) ? 0 : roundHalfEven(v);
    }
  }
  return { codes, scales };
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
