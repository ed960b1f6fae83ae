/**
 * A frozen weight [out, in] kept in bitsandbytes' 4-bit (NF4/FP4) or 8-bit (LLM.int8) form, and the projection
 * that reads it: y = x·Wᵀ (+ bias) and, in the backward pass, dx = g·W. W is dequantised a panel of rows at a time
 * into a scratch of about 4 MB that a matmul then reads (bf16 when the model computes in bf16), so no
 * full-precision copy of the weight ever exists; for the few rows of decoding, 4-bit codes are read in place.
 * The weight gets no gradient (QLoRA trains adapters on top).
 */
import { GEMV_MAX_ROWS, native, NativeDType } from '../native.js';
import { needsGrad, record } from './autograd.js';
import { bf16Of, biasGrad } from './ops/linear.js';
import { f16BitsToF32, f32ToF16Bits } from './dtype.js';
import { Tensor } from './tensor.js';

export type QuantKind = 'nf4' | 'fp4' | 'int8';

/**
 * bitsandbytes' double quantization of the 4-bit blocks' absmax values, kept as it is (a byte per block):
 * absmax[b] = f32(map[codes[b]] · nestedAbsmax[b / nestedBlocksize]) + offset, expanded a range at a time.
 */
export interface DoubleQuantizedAbsmax {
  codes: Uint8Array;
  nestedAbsmax: Float32Array;
  offset: number;
  nestedBlocksize: number;
  /** the 256-entry 8-bit dynamic map */
  map: Float32Array;
}

/** 4-bit: packed codes, one absmax per block (f32, or double-quantized); int8: codes and one f32 scale per row. */
export type QuantizedData =
  | {
      kind: 'nf4' | 'fp4';
      packed: Uint8Array;
      absmax: Float32Array | DoubleQuantizedAbsmax;
      blocksize: number;
      table: Float32Array;
    }
  | { kind: 'int8'; codes: Int8Array; scales: Float32Array };

/** Expanded absmax values, reused from call to call (each native call reads them at once). */
let absmaxScratch = new Float32Array(0);

/** The f32 absmax of blocks [block0, block0 + count). */
function absmaxRange(a: Float32Array | DoubleQuantizedAbsmax, block0: number, count: number): Float32Array {
  if (a instanceof Float32Array) return a.subarray(block0, block0 + count);
  if (absmaxScratch.length < count) absmaxScratch = new Float32Array(count);
  const out = absmaxScratch.subarray(0, count);
  native.expandAbsmax(a.codes, a.nestedAbsmax, a.nestedBlocksize, a.offset, a.map, block0, count, out);
  return out;
}

function absmaxBytes(a: Float32Array | DoubleQuantizedAbsmax): number {
  return a instanceof Float32Array ? a.byteLength : a.codes.byteLength + a.nestedAbsmax.byteLength;
}

/** Bytes of scratch a panel of dequantised rows may take. */
const panelBytes = 4 << 20;

export class QuantizedMatrix {
  constructor(
    readonly shape: [number, number],
    readonly data: QuantizedData,
    /** the precision the matmuls run in (bf16: the panel and the input rounded to bf16, f32 accumulation) */
    readonly compute: 'f32' | 'bf16',
    /** the dtype dequantised values are rounded to first: a checkpoint's own (bitsandbytes returns that dtype) */
    readonly roundTo: 'bf16' | 'f16' | null = null,
  ) {}

  /** Bytes the quantized form holds (codes and statistics). */
  get bytes(): number {
    const d = this.data;
    return d.kind === 'int8' ? d.codes.byteLength + d.scales.byteLength : d.packed.byteLength + absmaxBytes(d.absmax);
  }

  /** Rows [row0, row0 + rows) dequantised into `out` (f32, or bf16 bits). */
  dequantizeRows(row0: number, rows: number, out: Float32Array | Uint16Array): void {
    const d = this.data;
    const cols = this.shape[1];
    if (out instanceof Float32Array && this.roundTo === 'bf16') {
      const bits = new Uint16Array(rows * cols);
      this.dequantizeRows(row0, rows, bits);
      native.toF32(bits, out, bits.length);
      return;
    }
    const bf16 = out instanceof Uint16Array ? 1 : 0;
    if (d.kind === 'int8') native.dequantizeInt8Rows(d.codes, d.scales, cols, row0, rows, out, bf16);
    else {
      const block0 = Math.floor((row0 * cols) / d.blocksize);
      const blocks = Math.ceil(((row0 + rows) * cols) / d.blocksize) - block0;
      const absmax = absmaxRange(d.absmax, block0, blocks);
      native.dequantize4bitRows(d.packed, absmax, block0, d.table, d.blocksize, cols, row0, rows, out, bf16);
    }
    if (out instanceof Float32Array && this.roundTo === 'f16')
      for (let i = 0; i < rows * cols; i++) out[i] = f16BitsToF32(f32ToF16Bits(out[i]));
  }

  /** Rows per panel: the scratch stays near panelBytes, and at least 16 rows. */
  panelRows(): number {
    const bytesPerRow = this.shape[1] * (this.compute === 'bf16' ? 2 : 4);
    return Math.max(16, Math.floor(panelBytes / bytesPerRow));
  }
}

/**
 * The precision a quantized projection's matmuls run in: bf16 where oneDNN has bf16 matmuls; where it widens bf16
 * operands to f32 anyway, panels are dequantised straight to f32 (the same speed, one conversion fewer).
 */
export function panelCompute(requested: 'f32' | 'bf16'): 'f32' | 'bf16' {
  return requested === 'bf16' && native.info().bf16Matmul === 'onednn' ? 'bf16' : 'f32';
}

function scratch(q: QuantizedMatrix, elements: number): Tensor<'f32'> | Tensor<'bf16'> {
  return q.compute === 'bf16' ? Tensor.empty([elements], 'bf16') : Tensor.empty([elements], 'f32');
}

export type FourBitData = Extract<QuantizedData, { kind: 'nf4' | 'fp4' }>;

/** The 4-bit codes decoding's few rows read in registers (gemv4bit): NF4/FP4 in whole blocks; else null. */
export function registerCodes(q: QuantizedMatrix): FourBitData | null {
  const d = q.data;
  return d.kind !== 'int8' && d.blocksize % 32 === 0 && q.shape[1] % d.blocksize === 0 ? d : null;
}

export type Int8Data = Extract<QuantizedData, { kind: 'int8' }>;

/**
 * The 8-bit codes decoding's few rows read in place (gemvInt8), where the panels they stand for are f32 and
 * unrounded (gemvInt8 gives their bits); else null.
 */
export function inPlaceInt8(q: QuantizedMatrix): Int8Data | null {
  return q.data.kind === 'int8' && q.roundTo === null && q.compute === 'f32' ? q.data : null;
}

/** y[rows, N] = x[rows, K]·Wᵀ (+ bias), a panel of W's rows at a time. */
export function quantProject(x: Tensor<'f32'>, q: QuantizedMatrix, bias: Tensor<'f32'> | null): Tensor<'f32'> {
  const [N, K] = q.shape;
  if (x.shape[x.shape.length - 1] !== K) throw new Error(`quantLinear: input [${x.shape}] does not match [${q.shape}]`);
  const rows = x.size / K;
  const out = Tensor.empty([...x.shape.slice(0, -1), N], 'f32');
  const int8 = rows <= GEMV_MAX_ROWS ? inPlaceInt8(q) : null;
  if (int8) {
    // decoding an 8-bit base: its codes read in place, the values and sums of the f32 panels below, bit for bit
    native.gemvInt8(x.data, int8.codes, int8.scales, out.data, rows, N, K, bias?.data ?? null);
    return out;
  }
  const d = rows <= GEMV_MAX_ROWS ? registerCodes(q) : null;
  if (d) {
    // decoding: the codes are looked up in registers, f32 products (no panel, no rounding of the weight); a
    // double-quantized absmax is expanded a row at a time inside the kernel
    const a = d.absmax;
    if (a instanceof Float32Array)
      native.gemv4bit(x.data, d.packed, a, d.table, d.blocksize, out.data, rows, N, K, bias?.data ?? null);
    else
      native.gemv4bit(
        x.data,
        d.packed,
        null,
        d.table,
        d.blocksize,
        out.data,
        rows,
        N,
        K,
        bias?.data ?? null,
        a.codes,
        a.nestedAbsmax,
        a.nestedBlocksize,
        a.offset,
        a.map,
      );
    return out;
  }
  const dtype = q.compute === 'bf16' ? NativeDType.bf16 : NativeDType.f32;
  // the bf16 copy of x that every projection reading x shares (q, k and v), as dense projections do
  const xIn = q.compute === 'bf16' ? bf16Of(x) : null;
  const P = Math.min(q.panelRows(), N);
  const panel = scratch(q, P * K);
  const part = Tensor.empty([rows * P], 'f32');
  for (let n0 = 0; n0 < N; n0 += P) {
    const p = Math.min(P, N - n0);
    q.dequantizeRows(n0, p, panel.data);
    const b = bias ? bias.data.subarray(n0, n0 + p) : null;
    native.matmul(xIn?.data ?? x.data, panel.data, part.data, rows, p, K, false, true, false, b, dtype);
    for (let r = 0; r < rows; r++) out.data.set(part.data.subarray(r * p, (r + 1) * p), r * N + n0);
  }
  part.dispose();
  panel.dispose();
  return out;
}

/** dx (+)= g[rows, N]·W, a panel of W's rows at a time. */
export function quantInputGrad(g: Tensor<'f32'>, q: QuantizedMatrix, dx: Tensor<'f32'>, accumulate: boolean): void {
  const [N, K] = q.shape;
  const rows = g.size / N;
  const dtype = q.compute === 'bf16' ? NativeDType.bf16 : NativeDType.f32;
  const P = Math.min(q.panelRows(), N);
  const panel = scratch(q, P * K);
  const gPart = Tensor.empty([rows * P], 'f32');
  const gIn = q.compute === 'bf16' ? Tensor.empty([rows * P], 'bf16') : null;
  if (!accumulate) dx.data.fill(0);
  for (let n0 = 0; n0 < N; n0 += P) {
    const p = Math.min(P, N - n0);
    q.dequantizeRows(n0, p, panel.data);
    for (let r = 0; r < rows; r++) gPart.data.set(g.data.subarray(r * N + n0, r * N + n0 + p), r * p);
    if (gIn) native.toBf16(gPart.data, gIn.data, rows * p);
    native.matmul(gIn?.data ?? gPart.data, panel.data, dx.data, rows, K, p, false, false, true, null, dtype);
  }
  gPart.dispose();
  gIn?.dispose();
  panel.dispose();
}

/** x·Wᵀ (+ bias) with W quantized; the backward gives dx = g·W (W itself gets no gradient). */
export function quantLinear(x: Tensor<'f32'>, q: QuantizedMatrix, bias: Tensor<'f32'> | null = null): Tensor<'f32'> {
  const out = quantProject(x, q, bias);
  if (!needsGrad([x, bias])) return out;
  const inputs = bias ? [x, bias] : [x];
  return record(out, 'quantLinear', inputs, (g, needs) => {
    let dx: Tensor<'f32'> | null = null;
    if (needs[0]) {
      dx = Tensor.empty(x.shape, 'f32');
      quantInputGrad(g, q, dx, false);
    }
    const db = bias && needs[1] ? biasGrad(g, x.size / q.shape[1], bias) : null;
    return bias ? [dx, db] : [dx];
  });
}
