/**
 * safetensors: an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}
 * (plus an optional "__metadata__" string map), then raw little-endian data. Reading goes straight into
 * native tensor memory; writing is atomic. Every malformed file gets an error naming the file and tensor.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { LmfError } from '../errors.js';
import { f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, type DType } from '../tensor/dtype.js';
import { native, NativeDType } from '../native.js';
import { Tensor, type Shape } from '../tensor/tensor.js';
import { writeAll, writeFileAtomic } from './atomic.js';

export type FileDType = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'F64' | 'I8' | 'U8' | 'I16' | 'BOOL';

const fileBytes: Record<FileDType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export interface TensorEntry {
  dtype: FileDType;
  shape: number[];
  /** absolute byte offset of the data in the file */
  offset: number;
  bytes: number;
}

const MAX_HEADER = 100 * 1024 * 1024;

function corrupt(file: string, message: string, tensor?: string): LmfError {
  return new LmfError('bad_safetensors', message, {
    file,
    tensor,
    hint: 'the file is truncated or not a safetensors file; copy or download it again',
  });
}

/** An open safetensors file: the parsed, checked header, and reads of single tensors. */
export class SafetensorsFile {
  readonly file: string;
  readonly entries: Map<string, TensorEntry>;
  readonly metadata: Record<string, string>;
  private fd: number;

  private constructor(file: string, fd: number, entries: Map<string, TensorEntry>, metadata: Record<string, string>) {
    this.file = file;
    this.fd = fd;
    this.entries = entries;
    this.metadata = metadata;
  }

  static open(file: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch (err) {
      throw new LmfError('file_missing', `cannot open the weights file (${(err as Error).message})`, { file });
    }
    try {
      const size = fstatSync(fd).size;
      if (size < 8) throw corrupt(file, `the file has ${size} bytes, fewer than a safetensors header needs`);
      const lenBuf = Buffer.alloc(8);
      readSync(fd, lenBuf, 0, 8, 0);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen > MAX_HEADER || 8 + headerLen > size) {
        throw corrupt(file, `the header claims ${headerLen} bytes but the file has ${size}`);
      }
      const headerBuf = Buffer.alloc(headerLen);
      readSync(fd, headerBuf, 0, headerLen, 8);
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(headerBuf.toString('utf8')) as Record<string, unknown>;
      } catch (err) {
        throw corrupt(file, `the header is not valid JSON (${(err as Error).message})`);
      }
      const dataStart = 8 + headerLen;
      const entries = new Map<string, TensorEntry>();
      let metadata: Record<string, string> = {};
      const spans: [number, number, string][] = [];
      for (const [name, raw] of Object.entries(header)) {
        if (name === '__metadata__') {
          metadata = (raw ?? {}) as Record<string, string>;
          continue;
        }
        const e = raw as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
        if (!e || typeof e.dtype !== 'string' || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets)) {
          throw corrupt(file, 'the header entry lacks dtype, shape or data_offsets', name);
        }
        if (!(e.dtype in fileBytes)) throw corrupt(file, `unsupported dtype ${e.dtype}`, name);
        const dtype = e.dtype as FileDType;
        const [a, b] = e.data_offsets;
        const count = e.shape.reduce((x, y) => x * y, 1);
        if (!(a >= 0 && b >= a && b - a === count * fileBytes[dtype])) {
          throw corrupt(file, `data_offsets ${a}..${b} do not fit shape [${e.shape}] of ${dtype}`, name);
        }
        if (dataStart + b > size) {
          throw corrupt(file, `the data ends at byte ${dataStart + b} but the file has only ${size} bytes`, name);
        }
        entries.set(name, { dtype, shape: e.shape, offset: dataStart + a, bytes: b - a });
        spans.push([a, b, name]);
      }
      spans.sort((x, y) => x[0] - y[0]);
      for (let i = 1; i < spans.length; i++) {
        if (spans[i][0] < spans[i - 1][1]) throw corrupt(file, `overlaps tensor ${spans[i - 1][2]}`, spans[i][2]);
      }
      return new SafetensorsFile(file, fd, entries, metadata);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  close(): void {
    closeSync(this.fd);
  }

  /** A tensor's bytes as stored (packed quantised weights, their statistics, JSON packed into U8). */
  readRaw(name: string): Uint8Array {
    const entry = this.entries.get(name);
    if (!entry)
      throw new LmfError('missing_tensor', 'the tensor is not in this file', { file: this.file, tensor: name });
    const raw = new Uint8Array(entry.bytes);
    this.readBytes(entry, raw, name);
    return raw;
  }

  private readBytes(entry: TensorEntry, into: Uint8Array, name: string): void {
    let done = 0;
    while (done < entry.bytes) {
      const n = readSync(this.fd, into, done, entry.bytes - done, entry.offset + done);
      if (n === 0) throw corrupt(this.file, 'the file ended while reading', name);
      done += n;
    }
  }

  /**
   * Reads one tensor into native memory as `dtype` (f32 or bf16), converting F16/BF16/F32 as needed; a NaN or
   * infinite value is refused, naming the tensor and the file.
   */
  read(name: string, dtype: 'f32' | 'bf16'): Tensor<'f32' | 'bf16'> {
    const t = this.readAs(name, dtype);
    const bad = nonFiniteCount(t);
    if (bad) {
      t.dispose();
      throw new LmfError('non_finite_weights', `${bad} of ${t.size} values are NaN or infinite`, {
        file: this.file,
        tensor: name,
        hint: 'the checkpoint is damaged or was saved after training diverged: use an earlier one',
      });
    }
    return t;
  }

  private readAs(name: string, dtype: 'f32' | 'bf16'): Tensor<'f32' | 'bf16'> {
    const entry = this.entries.get(name);
    if (!entry)
      throw new LmfError('missing_tensor', 'the tensor is not in this file', { file: this.file, tensor: name });
    const shape: Shape = entry.shape;
    const stored: DType | 'f16' | null =
      entry.dtype === 'F32' ? 'f32' : entry.dtype === 'BF16' ? 'bf16' : entry.dtype === 'F16' ? 'f16' : null;
    if (stored === null) {
      throw new LmfError('bad_dtype', `weights of type ${entry.dtype} cannot be loaded (F32, F16 or BF16 expected)`, {
        file: this.file,
        tensor: name,
      });
    }
    if (stored === dtype) {
      const t = Tensor.empty(shape, dtype);
      this.readBytes(entry, new Uint8Array(t.data.buffer, t.data.byteOffset, entry.bytes), name);
      return t;
    }
    if (stored === 'bf16') {
      const raw = Tensor.empty(shape, 'bf16');
      this.readBytes(entry, new Uint8Array(raw.data.buffer, raw.data.byteOffset, entry.bytes), name);
      const out = raw.toF32();
      raw.dispose();
      return out;
    }
    // f32 -> bf16, or f16 -> either: go through f32
    const f32 = Tensor.empty(shape, 'f32');
    if (stored === 'f16') {
      const bits = new Uint16Array(entry.bytes / 2);
      this.readBytes(entry, new Uint8Array(bits.buffer), name);
      for (let i = 0; i < bits.length; i++) f32.data[i] = f16BitsToF32(bits[i]);
    } else {
      this.readBytes(entry, new Uint8Array(f32.data.buffer, f32.data.byteOffset, entry.bytes), name);
    }
    if (dtype === 'f32') return f32;
    const out = f32.toBf16();
    f32.dispose();
    return out;
  }

  /** Reads a tensor of any numeric dtype as plain numbers (small tensors: labels, ids, golden values). */
  readNumbers(name: string): Float64Array {
    const raw = this.readRaw(name);
    const entry = this.entries.get(name)!;
    const dv = new DataView(raw.buffer);
    const n = entry.bytes / fileBytes[entry.dtype];
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      switch (entry.dtype) {
        case 'F64':
          out[i] = dv.getFloat64(i * 8, true);
          break;
        case 'F32':
          out[i] = dv.getFloat32(i * 4, true);
          break;
        case 'F16':
          out[i] = f16BitsToF32(dv.getUint16(i * 2, true));
          break;
        case 'BF16': {
          const u = new Uint32Array([dv.getUint16(i * 2, true) << 16]);
          out[i] = new Float32Array(u.buffer)[0];
          break;
        }
        case 'I64':
          out[i] = Number(dv.getBigInt64(i * 8, true));
          break;
        case 'I32':
          out[i] = dv.getInt32(i * 4, true);
          break;
        case 'I16':
          out[i] = dv.getInt16(i * 2, true);
          break;
        case 'I8':
          out[i] = dv.getInt8(i);
          break;
        case 'U8':
        case 'BOOL':
          out[i] = dv.getUint8(i);
          break;
      }
    }
    return out;
  }
}

/** Values an F16 file cannot hold (|x| > 65504 would become infinite). */
function beyondF16(t: Tensor): number {
  const values = t.toArray();
  let n = 0;
  for (let i = 0; i < values.length; i++) if (Math.abs(values[i]) > 65504) n++;
  return n;
}

function nonFiniteCount(t: Tensor): number {
  if (t.dtype === 'i32') return 0;
  return native.countNonFinite(
    t.data as Float32Array | Uint16Array,
    t.size,
    t.dtype === 'bf16' ? NativeDType.bf16 : NativeDType.f32,
  );
}

/** A tensor to write: values from a native tensor, stored as `dtype` in the file. */
export interface TensorToWrite {
  tensor: Tensor;
  dtype: 'F32' | 'BF16' | 'F16';
}

function encode(t: Tensor, dtype: 'F32' | 'BF16' | 'F16'): Uint8Array {
  if (dtype === 'F32' && t.dtype === 'f32') return new Uint8Array(t.data.buffer, t.data.byteOffset, t.size * 4);
  if (dtype === 'BF16' && t.dtype === 'bf16') return new Uint8Array(t.data.buffer, t.data.byteOffset, t.size * 2);
  if (dtype === 'BF16') {
    const out = new Uint16Array(t.size);
    const src = t.data as Float32Array;
    for (let i = 0; i < t.size; i++) out[i] = f32ToBf16Bits(src[i]);
    return new Uint8Array(out.buffer);
  }
  const values = t.toArray();
  if (dtype === 'F32') return new Uint8Array(values.buffer);
  const out = new Uint16Array(t.size);
  for (let i = 0; i < t.size; i++) out[i] = f32ToF16Bits(values[i]);
  return new Uint8Array(out.buffer);
}

/** Writes tensors (in name order) atomically; the header is padded with spaces to 8 bytes. */
export function writeSafetensors(
  file: string,
  tensors: Map<string, TensorToWrite>,
  metadata: Record<string, string> = {},
): void {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const bytesPer = { F32: 4, BF16: 2, F16: 2 } as const;
  for (const name of names) {
    const { tensor, dtype } = tensors.get(name)!;
    const bad = nonFiniteCount(tensor) + (dtype === 'F16' ? beyondF16(tensor) : 0);
    if (bad) {
      throw new LmfError(
        'non_finite_output',
        `refusing to write a tensor with ${bad} NaN or infinite values${dtype === 'F16' ? " (or beyond F16's ±65504)" : ''}`,
        {
          file,
          tensor: name,
          hint: 'training diverged: lower learning_rate or set max_grad_norm, and resume from an earlier checkpoint',
        },
      );
    }
    const n = tensor.size * bytesPer[dtype];
    header[name] = { dtype, shape: [...tensor.shape], data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileAtomic(file, (fd) => {
    writeAll(fd, len);
    writeAll(fd, json);
    for (const name of names) {
      const { tensor, dtype } = tensors.get(name)!;
      writeAll(fd, encode(tensor, dtype));
    }
  });
}
