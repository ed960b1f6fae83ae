/**
 * llama.cpp's block formats for `export_gguf: q4_k_m`, encoded as ggml lays them out (ggml-common.h) and with
 * the quantizers its reference implementation publishes (ggml-quants.c), written here from that description:
 *   q4_K: super-blocks of 256 values = 8 sub-blocks of 32, value = d·sc·q − dmin·m with q in 0..15 and the
 *         sub-blocks' 6-bit scales sc and mins m packed in 12 bytes (144 bytes a block);
 *   q6_K: 16 sub-blocks of 16, value = d·sc·(q − 32) with q in 0..63 and 8-bit scales (210 bytes);
 *   q5_0: blocks of 32, value = d·(q − 16) with q in 0..31 (22 bytes): what llama.cpp falls back to for a
 *         q4_K tensor whose rows are not whole super-blocks.
 */
import { f16BitsToF32, f32ToF16Bits } from '../tensor/dtype.js';
import { maxOf } from '../util/arrays.js';

export const QK_K = 256;
export const Q4_K_BYTES = 144;
export const Q6_K_BYTES = 210;
export const Q5_0_BYTES = 22;

const nearest = (x: number) => Math.round(x);
const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
/** what a value stored as f16 reads back as */
const viaF16 = (x: number) => f16BitsToF32(f32ToF16Bits(x));

/**
 * The scale and (non-positive) offset that best fit x ≈ scale·L + min with L in 0..nmax, by weighted least
 * squares over a sweep of candidate scales (llama.cpp's make_qkx2_quants). Writes the codes into L.
 */
function fitAffine(x: Float32Array, w: Float32Array, L: Uint8Array, nmax: number): { scale: number; min: number } {
  const n = x.length;
  let lo = x[0],
    hi = x[0],
    sumW = 0,
    sumX = 0;
  for (let i = 0; i < n; i++) {
    lo = Math.min(lo, x[i]);
    hi = Math.max(hi, x[i]);
    sumW += w[i];
    sumX += w[i] * x[i];
  }
  if (lo > 0) lo = 0;
  if (hi === lo) {
    L.fill(0);
    return { scale: 0, min: lo };
  }
  const codes = (iscale: number, min: number, into: Uint8Array) => {
    for (let i = 0; i < n; i++) into[i] = clamp(nearest(iscale * (x[i] - min)), 0, nmax);
  };
  const error = (scale: number, min: number, l: Uint8Array) => {
    let e = 0;
    for (let i = 0; i < n; i++) e += w[i] * (scale * l[i] + min - x[i]) ** 2;
    return e;
  };
  let scale = (hi - lo) / nmax;
  let min = lo;
  codes(nmax / (hi - lo), lo, L);
  let best = error(scale, min, L);
  const trial = new Uint8Array(n);
  for (let step = 0; step <= 20; step++) {
    codes((-1 + 0.1 * step + nmax) / (hi - lo), lo, trial);
    let sumL = 0,
      sumL2 = 0,
      sumXL = 0;
    for (let i = 0; i < n; i++) {
      sumL += w[i] * trial[i];
      sumL2 += w[i] * trial[i] * trial[i];
      sumXL += w[i] * trial[i] * x[i];
    }
    const D = sumW * sumL2 - sumL * sumL;
    if (D <= 0) continue;
    let s = (sumW * sumXL - sumX * sumL) / D;
    let m = (sumL2 * sumX - sumL * sumXL) / D;
    if (m > 0) {
      m = 0;
      s = sumXL / sumL2;
    }
    const e = error(s, m, trial);
    if (e < best) {
      L.set(trial);
      best = e;
      scale = s;
      min = m;
    }
  }
  return { scale, min };
}

/** q4_K: 256 values a block (see the header); values.length a multiple of 256. */
export function encodeQ4K(values: Float32Array): Uint8Array {
  const blocks = values.length / QK_K;
  const out = new Uint8Array(blocks * Q4_K_BYTES);
  const view = new DataView(out.buffer);
  const L = new Uint8Array(QK_K);
  const weights = new Float32Array(32);
  const scales = new Float32Array(8),
    mins = new Float32Array(8);
  for (let b = 0; b < blocks; b++) {
    const x = values.subarray(b * QK_K, (b + 1) * QK_K);
    for (let j = 0; j < 8; j++) {
      const sub = x.subarray(32 * j, 32 * j + 32);
      let sum2 = 0;
      for (const v of sub) sum2 += v * v;
      const av = Math.sqrt(sum2 / 32);
      for (let i = 0; i < 32; i++) weights[i] = av + Math.abs(sub[i]);
      const fit = fitAffine(sub, weights, L.subarray(32 * j, 32 * j + 32), 15);
      scales[j] = fit.scale;
      mins[j] = -fit.min;
    }
    const maxScale = maxOf(scales),
      maxMin = maxOf(mins);
    const invScale = maxScale > 0 ? 63 / maxScale : 0,
      invMin = maxMin > 0 ? 63 / maxMin : 0;
    const at = b * Q4_K_BYTES;
    const packed = out.subarray(at + 4, at + 16);
    const sc = new Uint8Array(8),
      mn = new Uint8Array(8);
    for (let j = 0; j < 8; j++) {
      sc[j] = Math.min(63, nearest(invScale * scales[j]));
      mn[j] = Math.min(63, nearest(invMin * mins[j]));
      if (j < 4) {
        packed[j] = sc[j];
        packed[j + 4] = mn[j];
      } else {
        packed[j + 4] = (sc[j] & 0xf) | ((mn[j] & 0xf) << 4);
        packed[j - 4] |= (sc[j] >> 4) << 6;
        packed[j] |= (mn[j] >> 4) << 6;
      }
    }
    const d = viaF16(maxScale / 63),
      dmin = viaF16(maxMin / 63);
    view.setUint16(at, f32ToF16Bits(maxScale / 63), true);
    view.setUint16(at + 2, f32ToF16Bits(maxMin / 63), true);
    // the codes again, against the scales and mins as stored
    for (let j = 0; j < 8; j++) {
      const d1 = d * sc[j];
      if (!d1) continue;
      const m1 = dmin * mn[j];
      for (let i = 32 * j; i < 32 * j + 32; i++) L[i] = clamp(nearest((x[i] + m1) / d1), 0, 15);
    }
    // each 32 bytes hold a 64-value span: the first 32 values in the low nibbles, the next 32 in the high
    const qs = out.subarray(at + 16, at + Q4_K_BYTES);
    for (let span = 0; span < 4; span++)
      for (let l = 0; l < 32; l++) qs[32 * span + l] = L[64 * span + l] | (L[64 * span + 32 + l] << 4);
  }
  return out;
}

/** The scale for symmetric codes L in −nmax..nmax−1 of x ≈ scale·L, weighted by x² (llama.cpp's make_qx_quants). */
function fitSymmetric(x: Float32Array, L: Int8Array, nmax: number): number {
  let extreme = 0;
  for (const v of x) if (Math.abs(v) > Math.abs(extreme)) extreme = v;
  if (!extreme) {
    L.fill(0);
    return 0;
  }
  const fit = (iscale: number, into: Int8Array) => {
    let sumLX = 0,
      sumL2 = 0;
    for (let i = 0; i < x.length; i++) {
      const l = clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
      into[i] = l;
      const w = x[i] * x[i];
      sumLX += w * x[i] * l;
      sumL2 += w * l * l;
    }
    return { sumLX, sumL2 };
  };
  let { sumLX, sumL2 } = fit(-nmax / extreme, L);
  let scale = sumL2 ? sumLX / sumL2 : 0;
  let best = scale * sumLX;
  const trial = new Int8Array(x.length);
  for (let step = -9; step <= 9; step++) {
    if (step === 0) continue;
    const t = fit(-(nmax + 0.1 * step) / extreme, trial);
    if (t.sumL2 > 0 && t.sumLX * t.sumLX > best * t.sumL2) {
      L.set(trial);
      ({ sumLX, sumL2 } = t);
      scale = sumLX / sumL2;
      best = scale * sumLX;
    }
  }
  return scale;
}

/** q6_K: 256 values a block (see the header); values.length a multiple of 256. */
export function encodeQ6K(values: Float32Array): Uint8Array {
  const blocks = values.length / QK_K;
  const out = new Uint8Array(blocks * Q6_K_BYTES);
  const view = new DataView(out.buffer);
  const L = new Int8Array(QK_K);
  const scales = new Float32Array(16);
  for (let b = 0; b < blocks; b++) {
    const x = values.subarray(b * QK_K, (b + 1) * QK_K);
    let maxScale = 0;
    for (let j = 0; j < 16; j++) {
      scales[j] = fitSymmetric(x.subarray(16 * j, 16 * j + 16), L.subarray(16 * j, 16 * j + 16), 32);
      if (Math.abs(scales[j]) > Math.abs(maxScale)) maxScale = scales[j];
    }
    const at = b * Q6_K_BYTES;
    const ql = out.subarray(at, at + 128),
      qh = out.subarray(at + 128, at + 192),
      sc = new Int8Array(out.buffer, at + 192, 16);
    const codes = new Uint8Array(QK_K);
    if (maxScale) {
      const iscale = -128 / maxScale;
      const d = viaF16(1 / iscale);
      view.setUint16(at + 208, f32ToF16Bits(1 / iscale), true);
      for (let j = 0; j < 16; j++) {
        sc[j] = Math.min(127, nearest(iscale * scales[j]));
        const dj = d * sc[j];
        for (let i = 16 * j; i < 16 * j + 16; i++) codes[i] = dj ? clamp(nearest(x[i] / dj), -32, 31) + 32 : 32;
      }
    } else {
      codes.fill(32);
    }
    // each 128-value half: low nibbles of values l and l + 64 share byte l (and l + 32, l + 96 share l + 32);
    // the high two bits of values l, l + 32, l + 64, l + 96 share qh byte l
    for (let half = 0; half < 2; half++) {
      const q = codes.subarray(128 * half, 128 * half + 128);
      for (let l = 0; l < 32; l++) {
        ql[64 * half + l] = (q[l] & 0xf) | ((q[l + 64] & 0xf) << 4);
        ql[64 * half + l + 32] = (q[l + 32] & 0xf) | ((q[l + 96] & 0xf) << 4);
        qh[32 * half + l] = (q[l] >> 4) | ((q[l + 32] >> 4) << 2) | ((q[l + 64] >> 4) << 4) | ((q[l + 96] >> 4) << 6);
      }
    }
  }
  return out;
}

/** q5_0: blocks of 32, d = the value of largest magnitude over −16, codes rounded half up and clamped at 31. */
export function encodeQ5_0(values: Float32Array): Uint8Array {
  const blocks = values.length / 32;
  const out = new Uint8Array(blocks * Q5_0_BYTES);
  const view = new DataView(out.buffer);
  const code = (v: number) => Math.min(31, Math.trunc(Math.fround(v + 16.5)));
  for (let b = 0; b < blocks; b++) {
    const x = values.subarray(b * 32, b * 32 + 32);
    let extreme = 0;
    for (const v of x) if (Math.abs(v) > Math.abs(extreme)) extreme = v;
    const d = Math.fround(extreme / -16);
    const inv = d ? Math.fround(1 / d) : 0;
    const at = b * Q5_0_BYTES;
    view.setUint16(at, f32ToF16Bits(d), true);
    let high = 0;
    for (let j = 0; j < 16; j++) {
      const lo = code(Math.fround(x[j] * inv)),
        hi = code(Math.fround(x[j + 16] * inv));
      out[at + 6 + j] = (lo & 0xf) | ((hi & 0xf) << 4);
      high |= ((lo >> 4) << j) | ((hi >> 4) << (j + 16));
    }
    view.setUint32(at + 2, high >>> 0, true);
  }
  return out;
}
