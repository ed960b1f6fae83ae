/**
 * llama.cpp's block formats for `export_gguf: q4_k_m`, as ggml lays them out (ggml-common.h), encoded natively
 * (native/src/ggml_quants.cc, on every thread) with the quantizers ggml's reference implementation publishes:
 *   q4_K: super-blocks of 256 values = 8 sub-blocks of 32, value = d·sc·q − dmin·m with q in 0..15 and the
 *         sub-blocks' 6-bit scales sc and mins m packed in 12 bytes (144 bytes a block);
 *   q5_K: q4_K with q in 0..31, the fifth bits in 32 bytes of their own (176 bytes): a fused attn_qkv;
 *   q6_K: 16 sub-blocks of 16, value = d·sc·(q − 32) with q in 0..63 and 8-bit scales (210 bytes);
 *   q5_0: blocks of 32, value = d·(q − 16) with q in 0..31 (22 bytes), and
 *   q5_1: blocks of 32, value = d·q + m with q in 0..31 (24 bytes): what llama.cpp falls back to for a q4_K
 *         and a q5_K tensor whose rows are not whole super-blocks.
 */
import { native } from '../native.js';

export const QK_K = 256;
export const Q4_K_BYTES = 144;
export const Q6_K_BYTES = 210;
export const Q5_0_BYTES = 22;
export const Q5_K_BYTES = 176;
export const Q5_1_BYTES = 24;

function encode(values: Float32Array, type: 0 | 1 | 2 | 3 | 4, blockValues: number, blockBytes: number): Uint8Array {
  const out = new Uint8Array((values.length / blockValues) * blockBytes);
  native.quantizeGgml(values, values.length, type, out);
  return out;
}

/** q4_K blocks of values.length (a multiple of 256) values */
export const encodeQ4K = (values: Float32Array) => encode(values, 0, QK_K, Q4_K_BYTES);
/** q6_K blocks of values.length (a multiple of 256) values */
export const encodeQ6K = (values: Float32Array) => encode(values, 1, QK_K, Q6_K_BYTES);
/** q5_0 blocks of values.length (a multiple of 32) values */
export const encodeQ5_0 = (values: Float32Array) => encode(values, 2, 32, Q5_0_BYTES);
/** q5_K blocks of values.length (a multiple of 256) values */
export const encodeQ5K = (values: Float32Array) => encode(values, 3, QK_K, Q5_K_BYTES);
/** q5_1 blocks of values.length (a multiple of 32) values */
export const encodeQ5_1 = (values: Float32Array) => encode(values, 4, 32, Q5_1_BYTES);
