// The k-quant, q5_0 and q5_1 encoders of `export_gguf: q4_k_m`, decoded here as ggml's dequantize_row_* functions
// read the blocks (written from ggml's published layouts, independently of the encoders): every code lands
// where llama.cpp reads it, and the error is that of a 4.5-, 5.5-, 6.6-, 5.5- and 6-bit format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeQ4K, encodeQ5_0, encodeQ5_1, encodeQ5K, encodeQ6K } from '../../src/export/kquants.js';
import { f16BitsToF32 } from '../../src/tensor/dtype.js';
import { Rng } from '../../src/tensor/random.js';

/** Sub-block j's 6-bit scale and min from the 12 packed bytes q of a q4_K or q5_K block (ggml's get_scale_min_k4). */
function scaleMin(q: Uint8Array, j: number): [number, number] {
  return j < 4
    ? [q[j] & 63, q[j + 4] & 63]
    : [(q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4)];
}

function decodeQ4K(bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  for (let b = 0; b < n / 256; b++) {
    const at = b * 144;
    const d = f16BitsToF32(view.getUint16(at, true)),
      dmin = f16BitsToF32(view.getUint16(at + 2, true));
    const q = bytes.subarray(at + 4, at + 16);
    const qs = bytes.subarray(at + 16, at + 144);
    for (let span = 0; span < 4; span++) {
      const [s1, m1] = scaleMin(q, 2 * span),
        [s2, m2] = scaleMin(q, 2 * span + 1);
      for (let l = 0; l < 32; l++) {
        out[b * 256 + 64 * span + l] = d * s1 * (qs[32 * span + l] & 0xf) - dmin * m1;
        out[b * 256 + 64 * span + 32 + l] = d * s2 * (qs[32 * span + l] >> 4) - dmin * m2;
      }
    }
  }
  return out;
}

// q4_K's scales and mins; each value's code has its fifth bit in qh: value 64·span + l at bit 2·span of byte l,
// value 64·span + 32 + l at bit 2·span + 1
function decodeQ5K(bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  for (let b = 0; b < n / 256; b++) {
    const at = b * 176;
    const d = f16BitsToF32(view.getUint16(at, true)),
      dmin = f16BitsToF32(view.getUint16(at + 2, true));
    const q = bytes.subarray(at + 4, at + 16);
    const qh = bytes.subarray(at + 16, at + 48),
      qs = bytes.subarray(at + 48, at + 176);
    for (let span = 0; span < 4; span++) {
      const [s1, m1] = scaleMin(q, 2 * span),
        [s2, m2] = scaleMin(q, 2 * span + 1);
      for (let l = 0; l < 32; l++) {
        const lo = (qs[32 * span + l] & 0xf) + ((qh[l] >> (2 * span)) & 1) * 16;
        const hi = (qs[32 * span + l] >> 4) + ((qh[l] >> (2 * span + 1)) & 1) * 16;
        out[b * 256 + 64 * span + l] = d * s1 * lo - dmin * m1;
        out[b * 256 + 64 * span + 32 + l] = d * s2 * hi - dmin * m2;
      }
    }
  }
  return out;
}

function decodeQ6K(bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  for (let b = 0; b < n / 256; b++) {
    const at = b * 210;
    const d = f16BitsToF32(view.getUint16(at + 208, true));
    const sc = new Int8Array(bytes.buffer, bytes.byteOffset + at + 192, 16);
    for (let half = 0; half < 2; half++) {
      const ql = bytes.subarray(at + 64 * half, at + 64 * half + 64),
        qh = bytes.subarray(at + 128 + 32 * half, at + 128 + 32 * half + 32);
      const y = b * 256 + 128 * half;
      for (let l = 0; l < 32; l++) {
        const is = 8 * half + Math.floor(l / 16);
        out[y + l] = d * sc[is] * (((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32);
        out[y + l + 32] = d * sc[is + 2] * (((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32);
        out[y + l + 64] = d * sc[is + 4] * (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        out[y + l + 96] = d * sc[is + 6] * (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    }
  }
  return out;
}

function decodeQ5_0(bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  for (let b = 0; b < n / 32; b++) {
    const at = b * 22;
    const d = f16BitsToF32(view.getUint16(at, true));
    const qh = view.getUint32(at + 2, true);
    for (let j = 0; j < 16; j++) {
      const lo = (bytes[at + 6 + j] & 0xf) | (((qh >>> j) << 4) & 0x10);
      const hi = (bytes[at + 6 + j] >> 4) | ((qh >>> (j + 12)) & 0x10);
      out[b * 32 + j] = d * (lo - 16);
      out[b * 32 + j + 16] = d * (hi - 16);
    }
  }
  return out;
}

function decodeQ5_1(bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  for (let b = 0; b < n / 32; b++) {
    const at = b * 24;
    const d = f16BitsToF32(view.getUint16(at, true)),
      m = f16BitsToF32(view.getUint16(at + 2, true));
    const qh = view.getUint32(at + 4, true);
    for (let j = 0; j < 16; j++) {
      const lo = (bytes[at + 8 + j] & 0xf) | (((qh >>> j) << 4) & 0x10);
      const hi = (bytes[at + 8 + j] >> 4) | ((qh >>> (j + 12)) & 0x10);
      out[b * 32 + j] = d * lo + m;
      out[b * 32 + j + 16] = d * hi + m;
    }
  }
  return out;
}

/** Root-mean-square error relative to the values' own RMS. */
function relativeRms(a: Float32Array, b: Float32Array): number {
  let e = 0,
    s = 0;
  for (let i = 0; i < a.length; i++) {
    e += (a[i] - b[i]) ** 2;
    s += a[i] ** 2;
  }
  return Math.sqrt(e / s);
}

const rng = new Rng(3);
const weights = Float32Array.from({ length: 256 * 64 }, () => rng.normal() * 0.02);
// a row with an outlier and a constant-sign block, as trained weights have
weights[5] = 0.3;
weights.fill(0.01, 512, 768);

test('q4_K blocks decode as llama.cpp reads them, closer to the weights than 4-bit q4_0', () => {
  const bytes = encodeQ4K(weights);
  assert.equal(bytes.length, (weights.length / 256) * 144);
  const err = relativeRms(weights, decodeQ4K(bytes, weights.length));
  // q4_0 (16 levels around zero per 32 values) measures 0.089 on these weights, q4_K 0.073
  assert.ok(err < 0.08, `q4_K relative RMS error ${err}`);

  const flat = decodeQ4K(bytes, weights.length).subarray(512, 768);
  assert.ok(
    flat.every((v) => Math.abs(v - 0.01) < 1e-4),
    'a constant block is stored almost exactly (through its min)',
  );
});

test('q6_K blocks decode as llama.cpp reads them, within 6-bit error', () => {
  const bytes = encodeQ6K(weights);
  assert.equal(bytes.length, (weights.length / 256) * 210);
  const err = relativeRms(weights, decodeQ6K(bytes, weights.length));
  // measured 0.018: a quarter of q4_K's, as two more bits give
  assert.ok(err < 0.022, `q6_K relative RMS error ${err}`);
});

test('q5_0 blocks decode as llama.cpp reads them: values on the grid exactly, the rest within 5-bit error', () => {
  const grid = Float32Array.from({ length: 64 }, (_, i) => ((i % 32) - 16) * 0.125);
  assert.deepEqual(decodeQ5_0(encodeQ5_0(grid), 64), grid);
  const err = relativeRms(weights, decodeQ5_0(encodeQ5_0(weights), weights.length));
  // measured 0.045: half of q4_0's
  assert.ok(err < 0.05, `q5_0 relative RMS error ${err}`);
});

test('q5_K blocks decode as llama.cpp reads them, between q4_K and q6_K in error', () => {
  const bytes = encodeQ5K(weights);
  assert.equal(bytes.length, (weights.length / 256) * 176);
  const err = relativeRms(weights, decodeQ5K(bytes, weights.length));
  // measured 0.037: half of q4_K's, twice q6_K's, as one bit more or less gives
  assert.ok(err < 0.042 && err > 0.025, `q5_K relative RMS error ${err}`);
  const flat = decodeQ5K(bytes, weights.length).subarray(512, 768);
  assert.ok(
    flat.every((v) => Math.abs(v - 0.01) < 1e-4),
    'a constant block is stored almost exactly (through its min)',
  );
});

test('q5_1 blocks decode as llama.cpp reads them: values on the grid exactly, the rest within 5-bit error', () => {
  const grid = Float32Array.from({ length: 64 }, (_, i) => (i % 32) * 0.125 - 2);
  assert.deepEqual(decodeQ5_1(encodeQ5_1(grid), 64), grid);
  const err = relativeRms(weights, decodeQ5_1(encodeQ5_1(weights), weights.length));
  // measured 0.038: below q5_0's 0.045 (its minimum and range fit a block better than a symmetric scale)
  assert.ok(err < 0.042, `q5_1 relative RMS error ${err}`);
});
