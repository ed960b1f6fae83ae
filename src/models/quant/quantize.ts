/**
 * QLoRA's frozen base: a projection's weight quantized with bitsandbytes' formats (bnb.ts) as it is loaded.
 * Double quantization is applied as bnb applies it and the statistics are kept dequantised in memory (one f32
 * per block of 64: 0.5 bits per weight), which the dequantising matmuls read directly.
 */
import { Tensor } from '../../tensor/tensor.js';
import { panelCompute, QuantizedMatrix } from '../../tensor/quantized.js';
import { dequantizeAbsmax, fp4Table, nf4Table, quantize4bit, quantizeAbsmax, quantizeInt8Rows } from './bnb.js';

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
  const f32 = w.dtype === 'f32' ? (w as Tensor<'f32'>) : w.toF32();
  try {
    return quantizeValues(f32.data, w.shape as [number, number], s);
  } finally {
    if (f32 !== w) f32.dispose();
  }
}

function quantizeValues(values: Float32Array, [rows, cols]: [number, number], s: QuantizeSpec): QuantizedMatrix {
  if (s.bits === 8) {
    const q = quantizeInt8Rows(values, rows, cols);
    return new QuantizedMatrix([rows, cols], { kind: 'int8', codes: q.codes, scales: q.scales }, s.compute);
  }
  const blocks = quantize4bit(values, s.type);
  const absmax = s.doubleQuantization ? dequantizeAbsmax(quantizeAbsmax(blocks.absmax)) : blocks.absmax;
  const table = s.type === 'nf4' ? nf4Table : fp4Table;
  return new QuantizedMatrix(
    [rows, cols],
    { kind: s.type, packed: blocks.packed, absmax, blocksize: 64, table },
    s.compute,
  );
}
