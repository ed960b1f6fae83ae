/**
 * The batch of a golden file: input_ids and labels [batch, seq], and an optional attention_mask (1 = token,
 * 0 = padding). Padding becomes segment 0 and the tokens segment 1, so attention and linear attention leave the
 * padded positions out, as Hugging Face's mask does; their logits are not compared (the reference's are arbitrary).
 */
import { LmfError } from '../errors.js';
import type { SafetensorsFile } from '../io/safetensors.js';
import { shiftLabels, type ModelInput } from '../models/decoder.js';

export interface GoldenBatch {
  input: ModelInput;
  /** the labels shifted: position t holds the label of t + 1 */
  targets: Int32Array;
  /** 1 where a token is, 0 where padding is; null: no padding */
  mask: Int32Array | null;
}

export function readGoldenBatch(golden: SafetensorsFile): GoldenBatch {
  for (const name of ['input_ids', 'labels']) {
    if (!golden.entries.has(name))
      throw new LmfError('golden_mismatch', `the golden file has no ${name}`, { file: golden.file });
  }
  const shape = golden.entries.get('input_ids')!.shape;
  if (shape.length !== 2)
    throw new LmfError('golden_mismatch', `input_ids must be [batch, seq], got [${shape}]`, { file: golden.file });
  const [batch, seq] = shape;
  const mask = golden.entries.has('attention_mask') ? Int32Array.from(golden.readNumbers('attention_mask')) : null;
  if (mask && mask.length !== batch * seq)
    throw new LmfError('golden_mismatch', `attention_mask must be [${batch}, ${seq}] like input_ids`, {
      file: golden.file,
    });
  const ids = Int32Array.from(golden.readNumbers('input_ids'));
  return {
    input: { ids, batch, seq, ...(mask ? { segments: mask } : {}) },
    targets: shiftLabels(golden.readNumbers('labels'), batch, seq),
    mask,
  };
}

/** Logits [batch*seq, V] with the padded rows zeroed, so that only tokens are compared. */
export function tokenRows(logits: ArrayLike<number>, mask: Int32Array | null): Float64Array {
  const out = Float64Array.from(logits);
  if (!mask) return out;
  const V = out.length / mask.length;
  mask.forEach((m, row) => {
    if (!m) out.fill(0, row * V, (row + 1) * V);
  });
  return out;
}
