/**
 * QLoRA's frozen base: a projection's weight quantized with bitsandbytes' formats (bnb.ts) as it is loaded.
 * Double quantization is applied as bnb applies it and kept as bnb keeps it (a byte per block of 64 and an f32
 * per 256 blocks: 0.127 bits per weight instead of 0.5); the quantized projections expand the absmax values of
 * the rows they read.
 */
import { Tensor } from '../../tensor/tensor.js';
import { panelCompute, QuantizedMatrix } from '../../tensor/quantized.js';
import { dynamicMap, fp4Table, nf4Table, quantize4bit, quantizeAbsmax, quantizeInt8Rows } from './bnb.js';

export interface QuantizeSpec {
  bits: 4 | 8;
  /** 4-bit code table */
  type: 'nf4' | 'fp4';
  doubleQuantization: boolean;
  /** precision of the matmuls that read the weight */
  compute: 'f32' | 'bf16';
}

/** The quantizer LLaMA-Factory's keys ask for (quantization_bit null: none). */
export function quantizeFor(
  bits: 4 | 8 | null,
  type: 'nf4' | 'fp4',
  doubleQuantization: boolean,
  compute: 'f32' | 'bf16',
): ((w: Tensor) => QuantizedMatrix) | undefined {
  const panels = panelCompute(compute);
  return bits === null ? undefined : (w) => quantizeMatrix(w, { bits, type, doubleQuantization, compute: panels });
}

export function quantizeMatrix(w: Tensor, s: QuantizeSpec): QuantizedMatrix {
  const shape = w.shape as [number, number];
  // the 4-bit quantizer reads bf16 as it is stored: no f32 copy of the weight
  if (s.bits === 4 && w.dtype === 'bf16') return quantize4bitMatrix((w as Tensor<'bf16'>).data, shape, s);
  const f32 = w.dtype === 'f32' ? (w as Tensor<'f32'>) : w.toF32();
  try {
    if (s.bits === 4) return quantize4bitMatrix(f32.data, shape, s);
    const q = quantizeInt8Rows(f32.data, shape[0], shape[1]);
    return new QuantizedMatrix(shape, { kind: 'int8', codes: q.codes, scales: q.scales }, s.compute);
  } finally {
    if (f32 !== w) f32.dispose();
  }
}

function quantize4bitMatrix(
  values: Float32Array | Uint16Array,
  shape: [number, number],
  s: QuantizeSpec,
): QuantizedMatrix {
  const type = s.type;
  const blocks = quantize4bit(values, type);
  const absmax = s.doubleQuantization ? { ...quantizeAbsmax(blocks.absmax), map: dynamicMap } : blocks.absmax;
  const table = type === 'nf4' ? nf4Table : fp4Table;
  return new QuantizedMatrix(shape, { kind: type, packed: blocks.packed, absmax, blocksize: 64, table }, s.compute);
}
