/**
 * Hugging Face folders saved by bitsandbytes (config.json quantization_config.quant_method "bitsandbytes": the
 * shared "-bnb-4bit" and 8-bit checkpoints). Each quantized projection keeps `weight` packed beside its statistics —
 * 4-bit: weight.absmax, weight.quant_map, (double quantization) weight.nested_absmax, weight.nested_quant_map, and
 * the JSON of weight.quant_state.bitsandbytes__nf4|fp4; 8-bit: weight (int8), SCB, weight_format — and is read back
 * here as the weight bnb's dequantisation gives, in the checkpoint's dtype. Everything else in the folder is a
 * plain tensor.
 */
import { z } from 'zod';
import { LmfError } from '../../errors.js';
import { QuantizedMatrix, type DoubleQuantizedAbsmax } from '../../tensor/quantized.js';
import { Tensor } from '../../tensor/tensor.js';
import type { WeightFolder } from '../weights.js';
import { fp4Table, nf4Table } from './bnb.js';

/** Quantisation methods of other tools, refused by name (their weights are not bnb's layout). */
const otherMethods = ['gptq', 'awq', 'aqlm', 'eetq', 'hqq', 'fp8', 'compressed-tensors', 'torchao', 'bitnet', 'quanto'];

/** The folder's quantisation ("bitsandbytes"), null when it has none; another method is refused by name. */
export function checkpointQuantization(raw: Record<string, unknown>, dir: string): 'bitsandbytes' | null {
  const q = raw.quantization_config as { quant_method?: unknown } | undefined;
  if (!q) return null;
  const method = String(q.quant_method ?? 'bitsandbytes');
  if (method === 'bitsandbytes') return method;
  throw new LmfError('unsupported', `quantization_config.quant_method "${method}" is not supported`, {
    file: `${dir}/config.json`,
    key: 'quantization_config',
    hint: otherMethods.includes(method)
      ? 'LMFactory reads bitsandbytes checkpoints; use the unquantized model'
      : 'supported: bitsandbytes',
  });
}

const stateSchema = z.object({
  quant_type: z.enum(['nf4', 'fp4']),
  blocksize: z.number().int().positive(),
  dtype: z.string(),
  shape: z.array(z.number().int().nonnegative()),
  nested_blocksize: z.number().int().positive().optional(),
  nested_offset: z.number().optional(),
});

function corrupt(entryFile: string, tensor: string, message: string): LmfError {
  return new LmfError('bad_quant_state', message, {
    file: entryFile,
    tensor,
    hint: 'the bitsandbytes checkpoint is damaged or from an unknown version; download it again',
  });
}

/** The names a quantized weight's statistics have (so that the loader counts them as used). */
export function bnbCompanions(weights: WeightFolder, name: string): string[] {
  const prefix = name.replace(/\.weight$/, '');
  return [
    `${name}.absmax`,
    `${name}.quant_map`,
    `${name}.nested_absmax`,
    `${name}.nested_quant_map`,
    `${name}.quant_state.bitsandbytes__nf4`,
    `${name}.quant_state.bitsandbytes__fp4`,
    `${prefix}.SCB`,
    `${prefix}.weight_format`,
  ].filter((n) => weights.has(n));
}

function floats(weights: WeightFolder, name: string, count: number): Float32Array {
  const { entry, bytes } = weights.raw(name);
  if (entry.dtype !== 'F32' || bytes.length !== count * 4)
    throw corrupt(entry.file, name, `${entry.dtype} [${entry.shape}] where ${count} F32 values are expected`);
  return new Float32Array(bytes.buffer, bytes.byteOffset, count);
}

/** The dtype a checkpoint's quant_state names, as the rounding its dequantised values get. */
function roundingOf(dtype: string): 'bf16' | 'f16' | null {
  return dtype === 'bfloat16' ? 'bf16' : dtype === 'float16' ? 'f16' : null;
}

/**
 * The quantized weight `name` of a bitsandbytes folder as stored (statistics dequantised), or null when that
 * weight is plain. A statistic that is missing or the wrong size, or an unknown quant_state, stops with the tensor
 * and the file.
 */
export function readBnbQuantized(
  weights: WeightFolder,
  name: string,
  shape: readonly number[],
  compute: 'f32' | 'bf16',
): QuantizedMatrix | null {
  const count = shape.reduce((a, b) => a * b, 1);
  const dims: [number, number] = [shape[0], count / shape[0]];
  const stateName = [`${name}.quant_state.bitsandbytes__nf4`, `${name}.quant_state.bitsandbytes__fp4`].find((n) =>
    weights.has(n),
  );
  const scbName = `${name.replace(/\.weight$/, '')}.SCB`;
  if (stateName) {
    const { entry, bytes } = weights.raw(stateName);
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
    } catch {
      throw corrupt(entry.file, stateName, 'the quant_state is not JSON');
    }
    const state = stateSchema.safeParse(parsed);
    if (!state.success) throw corrupt(entry.file, stateName, `quant_state: ${state.error.issues[0].message}`);
    const s = state.data;
    if (!stateName.endsWith(s.quant_type))
      throw corrupt(
        entry.file,
        stateName,
        `the quant_state says ${s.quant_type} under a ${stateName.split('__')[1]} name`,
      );
    if (s.shape.length !== shape.length || s.shape.some((d, i) => d !== shape[i]))
      throw corrupt(entry.file, stateName, `the quant_state's shape [${s.shape}] is not [${shape}] from config.json`);
    const packed = weights.raw(name);
    if (packed.bytes.length !== (count + 1) >> 1)
      throw corrupt(packed.entry.file, name, `${packed.bytes.length} packed bytes for ${count} 4-bit values`);
    const blocks = Math.ceil(count / s.blocksize);
    let absmax: Float32Array | DoubleQuantizedAbsmax;
    if (s.nested_offset !== undefined) {
      const codes = weights.raw(`${name}.absmax`);
      if (codes.bytes.length !== blocks)
        throw corrupt(codes.entry.file, `${name}.absmax`, `${codes.bytes.length} absmax codes for ${blocks} blocks`);
      const nestedBlocksize = s.nested_blocksize ?? 256;
      absmax = {
        codes: codes.bytes,
        nestedAbsmax: floats(weights, `${name}.nested_absmax`, Math.ceil(blocks / nestedBlocksize)),
        offset: Math.fround(s.nested_offset),
        nestedBlocksize,
        map: floats(weights, `${name}.nested_quant_map`, 256),
      };
    } else {
      absmax = floats(weights, `${name}.absmax`, blocks);
    }
    const table = s.quant_type === 'nf4' ? nf4Table : fp4Table;
    const data = { kind: s.quant_type, packed: packed.bytes, absmax, blocksize: s.blocksize, table } as const;
    return new QuantizedMatrix(dims, data, compute, roundingOf(s.dtype));
  }
  if (!weights.has(scbName)) return null;
  const codes = weights.raw(name);
  if (codes.entry.dtype !== 'I8' || codes.bytes.length !== count)
    throw corrupt(
      codes.entry.file,
      name,
      `${codes.entry.dtype} [${codes.entry.shape}] where int8 [${shape}] is expected`,
    );
  const formatName = `${name.replace(/\.weight$/, '')}.weight_format`;
  if (weights.has(formatName) && weights.raw(formatName).bytes.some((b) => b !== 0))
    throw corrupt(
      weights.entry(formatName).file,
      formatName,
      'a tiled int8 layout (bitsandbytes ≤ 0.44); only "row" is read',
    );
  const int8 = new Int8Array(codes.bytes.buffer, codes.bytes.byteOffset, count);
  return new QuantizedMatrix(dims, { kind: 'int8', codes: int8, scales: floats(weights, scbName, shape[0]) }, compute);
}

/** The weight `name` of a bitsandbytes folder dequantised as bitsandbytes does (null when it is plain). */
export function readBnbWeight(
  weights: WeightFolder,
  name: string,
  shape: readonly number[],
  dtype: 'f32' | 'bf16',
): Tensor<'f32' | 'bf16'> | null {
  const q = readBnbQuantized(weights, name, shape, 'f32');
  if (!q) return null;
  const t = Tensor.empty([...shape], 'f32');
  q.dequantizeRows(0, shape[0], t.data);
  if (dtype === 'f32') return t;
  const out = t.toBf16();
  t.dispose();
  return out;
}
