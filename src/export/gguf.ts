/**
 * GGUF export for llama.cpp-based tools: llama.cpp's names (token_embd, blk.N.attn_q …), its dimension
 * order (innermost first), its rotary layout for the llama architecture (q and k rows interleaved per head,
 * as its converter permutes them), f16/bf16/q8_0/q4_0/q4_k_m matrices with f32 norms, and the tokenizer and chat
 * template in the metadata. The metadata block is serialised by @huggingface/gguf; tensor infos and data
 * follow here.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { GGUFValueType, serializeGgufMetadata, type GGUFTypedMetadata } from '@huggingface/gguf';
import { LmfError } from '../errors.js';
import { writeAll, writeFileAtomic } from '../io/atomic.js';
import type { ModelConfig } from '../models/config.js';
import type { GgufLayout, GgufValue } from '../models/family.js';
import { familyById } from '../models/families/index.js';
import type { CausalLM } from '../models/registry.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../tensor/dtype.js';
import { Tensor, withScope } from '../tensor/tensor.js';
import {
  encodeQ4K,
  encodeQ5_0,
  encodeQ5_1,
  encodeQ5K,
  encodeQ6K,
  Q4_K_BYTES,
  Q5_0_BYTES,
  Q5_1_BYTES,
  Q5_K_BYTES,
  Q6_K_BYTES,
  QK_K,
} from './kquants.js';

export type GgufType = 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_k_m';

/** ggml tensor types and llama.cpp file types */
const GGML = { F32: 0, F16: 1, Q4_0: 2, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q4_K: 12, Q5_K: 13, Q6_K: 14, BF16: 30 } as const;
const FILE_TYPE: Record<GgufType, number> = { f16: 1, q4_0: 2, q8_0: 7, q4_k_m: 15, bf16: 32 };
/** the ggml type of a model's matrices for each export type (norms and other vectors stay f32; q4_k_m mixes) */
const MATRIX_TYPE: Record<Exclude<GgufType, 'q4_k_m'>, number> = {
  f16: GGML.F16,
  bf16: GGML.BF16,
  q8_0: GGML.Q8_0,
  q4_0: GGML.Q4_0,
};
/** block types: values a block holds (a row must hold whole blocks) and its bytes */
const BLOCKS: Record<number, { values: number; bytes: number }> = {
  [GGML.Q8_0]: { values: 32, bytes: 34 },
  [GGML.Q4_0]: { values: 32, bytes: 18 },
  [GGML.Q5_0]: { values: 32, bytes: Q5_0_BYTES },
  [GGML.Q5_1]: { values: 32, bytes: Q5_1_BYTES },
  [GGML.Q4_K]: { values: QK_K, bytes: Q4_K_BYTES },
  [GGML.Q5_K]: { values: QK_K, bytes: Q5_K_BYTES },
  [GGML.Q6_K]: { values: QK_K, bytes: Q6_K_BYTES },
};
/** what llama.cpp stores a k-quant tensor as when its rows are not whole super-blocks */
const K_FALLBACK: Record<number, number> = { [GGML.Q4_K]: GGML.Q5_0, [GGML.Q5_K]: GGML.Q5_1, [GGML.Q6_K]: GGML.Q8_0 };
const ALIGN = 32;

type Entry = { type: GGUFValueType; value: unknown; subType?: GGUFValueType };

function hfToGgufName(name: string, sandwichNorms: boolean, own: Record<string, string> = {}): string {
  const fixed: Record<string, string> = {
    'model.embed_tokens.weight': 'token_embd.weight',
    'model.norm.weight': 'output_norm.weight',
    'lm_head.weight': 'output.weight',
  };
  if (fixed[name]) return fixed[name];
  const layer = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  if (layer && own[layer[2]]) return `blk.${layer[1]}.${own[layer[2]]}`;
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(name);
  const parts: Record<string, string> = {
    input_layernorm: 'attn_norm',
    // LLaMA's post-attention norm is the MLP's input norm; Gemma's normalises attention's output
    post_attention_layernorm: sandwichNorms ? 'post_attention_norm' : 'ffn_norm',
    pre_feedforward_layernorm: 'ffn_norm',
    post_feedforward_layernorm: 'post_ffw_norm',
    'self_attn.q_norm': 'attn_q_norm',
    'self_attn.k_norm': 'attn_k_norm',
    'self_attn.q_proj': 'attn_q',
    'self_attn.k_proj': 'attn_k',
    'self_attn.v_proj': 'attn_v',
    'self_attn.o_proj': 'attn_output',
    'mlp.gate_proj': 'ffn_gate',
    'mlp.up_proj': 'ffn_up',
    'mlp.down_proj': 'ffn_down',
    // Phi-3's fused projections
    'self_attn.qkv_proj': 'attn_qkv',
    'mlp.gate_up_proj': 'ffn_up',
  };
  if (!m || !parts[m[2]]) throw new LmfError('export_unsupported', `no GGUF name for tensor ${name}`);
  return `blk.${m[1]}.${parts[m[2]]}.${m[3]}`;
}

/** llama.cpp's llama architecture rotates interleaved pairs: reorder each head's rows [first half, second half] → pairs. */
function interleaveHeads(data: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const D = rows / heads,
    half = D / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const from = (h * D + j * half + i) * cols,
          to = (h * D + 2 * i + j) * cols;
        out.set(data.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

function encode(values: Float32Array, type: number): Uint8Array {
  if (type === GGML.F32) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (type === GGML.F16 || type === GGML.BF16) {
    const bits = new Uint16Array(values.length);
    const convert = type === GGML.F16 ? f32ToF16Bits : f32ToBf16Bits;
    for (let i = 0; i < values.length; i++) bits[i] = convert(values[i]);
    return new Uint8Array(bits.buffer);
  }
  if (type === GGML.Q4_0) return encodeQ4_0(values);
  if (type === GGML.Q5_0) return encodeQ5_0(values);
  if (type === GGML.Q5_1) return encodeQ5_1(values);
  if (type === GGML.Q4_K) return encodeQ4K(values);
  if (type === GGML.Q5_K) return encodeQ5K(values);
  if (type === GGML.Q6_K) return encodeQ6K(values);
  // q8_0: blocks of 32 values as an f16 scale (max |x| / 127) and 32 signed bytes
  const blocks = values.length / 32;
  const bytes = BLOCKS[GGML.Q8_0].bytes;
  const out = new Uint8Array(blocks * bytes);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(values[b * 32 + i]));
    const d = amax / 127;
    const inv = d ? 1 / d : 0;
    view.setUint16(b * bytes, f32ToF16Bits(d), true);
    for (let i = 0; i < 32; i++) view.setInt8(b * bytes + 2 + i, Math.round(values[b * 32 + i] * inv));
  }
  return out;
}

/**
 * q4_0: blocks of 32 values as an f16 scale d and 16 bytes of 4-bit codes, value = d · (code − 8). d is the
 * block's value of largest magnitude over −8, so that value lands on code 0 exactly and the rest of the range is
 * [−8, 7]·d; codes round to nearest (half up) and clamp at 15. Byte j holds value j in its low nibble and value
 * j + 16 in its high nibble.
 */
function encodeQ4_0(values: Float32Array): Uint8Array {
  const blocks = values.length / 32;
  const out = new Uint8Array(blocks * BLOCKS[GGML.Q4_0].bytes);
  const view = new DataView(out.buffer);
  const code = (v: number) => Math.min(15, Math.trunc(Math.fround(v + 8.5)));
  for (let b = 0; b < blocks; b++) {
    const x = values.subarray(b * 32, b * 32 + 32);
    let extreme = 0;
    for (const v of x) if (Math.abs(v) > Math.abs(extreme)) extreme = v;
    const d = Math.fround(extreme / -8);
    const inv = d ? Math.fround(1 / d) : 0;
    const at = b * BLOCKS[GGML.Q4_0].bytes;
    view.setUint16(at, f32ToF16Bits(d), true);
    for (let j = 0; j < 16; j++)
      out[at + 2 + j] = code(Math.fround(x[j] * inv)) | (code(Math.fround(x[j + 16] * inv)) << 4);
  }
  return out;
}

interface TokenizerJson {
  model: {
    type: string;
    vocab: Record<string, number>;
    merges?: (string | [string, string])[];
    byte_fallback?: boolean;
    unk_token?: string;
  };
  added_tokens?: { id: number; content: string; special: boolean }[];
}

/** The tokenizer as llama.cpp reads it: SentencePiece-style ("llama") or byte-level BPE ("gpt2"). */
function tokenizerMetadata(dir: string, model: CausalLM): Record<string, Entry> {
  const file = path.join(dir, 'tokenizer.json');
  let tj: TokenizerJson;
  try {
    tj = JSON.parse(readFileSync(file, 'utf8')) as TokenizerJson;
  } catch (err) {
    throw new LmfError('bad_tokenizer', `cannot read tokenizer.json (${(err as Error).message})`, { file });
  }
  if (tj.model.type !== 'BPE')
    throw new LmfError('export_unsupported', `GGUF export supports BPE tokenizers, not ${tj.model.type}`, { file });
  const size = model.config.vocabSize;
  const tokens = new Array<string>(size);
  const types = new Array<number>(size).fill(1);
  for (const [piece, id] of Object.entries(tj.model.vocab)) if (id < size) tokens[id] = piece;
  for (const t of tj.added_tokens ?? []) {
    if (t.id >= size) continue;
    tokens[t.id] = t.content;
    types[t.id] = t.special ? 3 : 4;
  }
  for (let i = 0; i < size; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = 5;
    }
  }
  const sentencePiece = tj.model.byte_fallback === true;
  const config = JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')) as {
    chat_template?: string;
    add_bos_token?: boolean;
  };
  const meta: Record<string, Entry> = {
    'tokenizer.ggml.model': { type: GGUFValueType.STRING, value: sentencePiece ? 'llama' : 'gpt2' },
    'tokenizer.ggml.tokens': { type: GGUFValueType.ARRAY, subType: GGUFValueType.STRING, value: tokens },
    'tokenizer.ggml.token_type': { type: GGUFValueType.ARRAY, subType: GGUFValueType.INT32, value: types },
    'tokenizer.ggml.add_bos_token': { type: GGUFValueType.BOOL, value: config.add_bos_token ?? sentencePiece },
  };
  if (sentencePiece) {
    // SentencePiece BPE merges by piece score; converted vocabularies are in score order, so -id ranks them
    tokens.forEach((t, i) => {
      if (/^<0x[0-9A-F]{2}>$/.test(t)) types[i] = 6;
    });
    if (tj.model.unk_token && tj.model.vocab[tj.model.unk_token] !== undefined) {
      types[tj.model.vocab[tj.model.unk_token]] = 2;
      meta['tokenizer.ggml.unknown_token_id'] = {
        type: GGUFValueType.UINT32,
        value: tj.model.vocab[tj.model.unk_token],
      };
    }
    meta['tokenizer.ggml.scores'] = {
      type: GGUFValueType.ARRAY,
      subType: GGUFValueType.FLOAT32,
      value: tokens.map((_, i) => -i),
    };
  } else {
    meta['tokenizer.ggml.pre'] = { type: GGUFValueType.STRING, value: 'default' };
    meta['tokenizer.ggml.merges'] = {
      type: GGUFValueType.ARRAY,
      subType: GGUFValueType.STRING,
      value: (tj.model.merges ?? []).map((m) => (Array.isArray(m) ? m.join(' ') : m)),
    };
  }
  const c = model.config;
  if (c.bosTokenId !== null) meta['tokenizer.ggml.bos_token_id'] = { type: GGUFValueType.UINT32, value: c.bosTokenId };
  if (c.eosTokenIds.length)
    meta['tokenizer.ggml.eos_token_id'] = { type: GGUFValueType.UINT32, value: c.eosTokenIds[0] };
  if (c.padTokenId !== null)
    meta['tokenizer.ggml.padding_token_id'] = { type: GGUFValueType.UINT32, value: c.padTokenId };
  if (config.chat_template)
    meta['tokenizer.chat_template'] = { type: GGUFValueType.STRING, value: config.chat_template };
  return meta;
}

function ggufString(s: string): Uint8Array {
  const bytes = Buffer.from(s, 'utf8');
  const out = new Uint8Array(8 + bytes.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(bytes.length), true);
  out.set(bytes, 8);
  return out;
}

const pad = (n: number) => (ALIGN - (n % ALIGN)) % ALIGN;

/** The family's GGUF layout, when llama.cpp computes this model's options as we do. */
function ggufLayout(c: ModelConfig): GgufLayout {
  const family = familyById(c.family);
  const why = family.gguf ? family.gguf.unsupported(c) : 'is not available yet';
  if (!family.gguf || why) {
    throw new LmfError('export_unsupported', `GGUF export of ${family.title} models ${why}`, {
      hint: 'export to a Hugging Face folder (export_dir) and convert it with llama.cpp',
    });
  }
  return family.gguf;
}

function entry(v: GgufValue): Entry {
  if ('u32' in v) return { type: GGUFValueType.UINT32, value: v.u32 };
  if ('f32' in v) return { type: GGUFValueType.FLOAT32, value: v.f32 };
  if ('i32s' in v) return { type: GGUFValueType.ARRAY, subType: GGUFValueType.INT32, value: v.i32s };
  return { type: GGUFValueType.STRING, value: v.str };
}

/** Writes `file` from the model (f32 weights) and the tokenizer files in `tokenizerDir`. */
export function writeGguf(file: string, model: CausalLM, tokenizerDir: string, type: GgufType, name: string): void {
  const c = model.config;
  const layout = ggufLayout(c);
  const arch = layout.arch;
  const rope = c.layerSpecs.find((l) => l.rope)!.rope!;
  const params = model.namedParameters().filter(([n]) => !(n === 'lm_head.weight' && c.tieWordEmbeddings));
  const extra = (layout.tensors?.(c) ?? []).map(
    (t) => [t.name, Tensor.from(t.values, [t.values.length], 'f32')] as [string, Tensor],
  );
  const tensors = [
    ...params.map(([hfName, t]) => {
      const name = hfToGgufName(hfName, c.sandwichNorms, layout.layerTensorNames);
      // a convolution weight [C, 1, K] is written [C, K], as the converter squeezes it
      const shape = t.shape.length > 2 ? t.shape.filter((d) => d !== 1) : t.shape;
      // llama.cpp keeps its convolution kernels in f32, as vectors and norms
      const matrix = shape.length === 2 && !name.endsWith('.ssm_conv1d.weight');
      const ggmlType = matrix ? matrixType(type, name, shape[1], c) : GGML.F32;
      return { hfName, name, tensor: t, shape, ggmlType };
    }),
    ...extra.map(([name, tensor]) => ({ hfName: name, name, tensor, shape: tensor.shape, ggmlType: GGML.F32 })),
  ];
  const meta: Record<string, Entry> = {
    'general.architecture': { type: GGUFValueType.STRING, value: arch },
    'general.name': { type: GGUFValueType.STRING, value: name },
    'general.file_type': { type: GGUFValueType.UINT32, value: FILE_TYPE[type] },
    'general.quantization_version': { type: GGUFValueType.UINT32, value: 2 },
    [`${arch}.context_length`]: { type: GGUFValueType.UINT32, value: c.maxPositions },
    [`${arch}.embedding_length`]: { type: GGUFValueType.UINT32, value: c.hiddenSize },
    [`${arch}.block_count`]: { type: GGUFValueType.UINT32, value: c.numLayers },
    [`${arch}.feed_forward_length`]: { type: GGUFValueType.UINT32, value: c.intermediateSize },
    [`${arch}.attention.head_count`]: { type: GGUFValueType.UINT32, value: c.numHeads },
    [`${arch}.attention.head_count_kv`]: { type: GGUFValueType.UINT32, value: c.numKvHeads },
    [`${arch}.attention.key_length`]: { type: GGUFValueType.UINT32, value: c.headDim },
    [`${arch}.attention.value_length`]: { type: GGUFValueType.UINT32, value: c.headDim },
    [`${arch}.rope.dimension_count`]: { type: GGUFValueType.UINT32, value: c.headDim },
    [`${arch}.rope.freq_base`]: { type: GGUFValueType.FLOAT32, value: rope.theta },
    [`${arch}.attention.layer_norm_rms_epsilon`]: { type: GGUFValueType.FLOAT32, value: c.rmsNormEps },
    [`${arch}.vocab_size`]: { type: GGUFValueType.UINT32, value: c.vocabSize },
    ...Object.fromEntries(Object.entries(layout.keys?.(c) ?? {}).map(([k, v]) => [`${arch}.${k}`, entry(v)])),
    ...tokenizerMetadata(tokenizerDir, model),
  };
  const header = serializeGgufMetadata(
    {
      version: { type: GGUFValueType.UINT32, value: 3 },
      tensor_count: { type: GGUFValueType.UINT64, value: BigInt(tensors.length) },
      kv_count: { type: GGUFValueType.UINT64, value: BigInt(Object.keys(meta).length) },
      ...meta,
    } as GGUFTypedMetadata,
    { alignment: 1 },
  );

  const sizes = tensors.map((t) =>
    t.ggmlType === GGML.F32
      ? 4 * t.tensor.size
      : BLOCKS[t.ggmlType]
        ? (t.tensor.size / BLOCKS[t.ggmlType].values) * BLOCKS[t.ggmlType].bytes
        : 2 * t.tensor.size,
  );
  const infos: Uint8Array[] = [];
  let offset = 0;
  tensors.forEach((t, i) => {
    const dims = [...t.shape].reverse();
    const info = new Uint8Array(4 + 8 * dims.length + 4 + 8);
    const view = new DataView(info.buffer);
    view.setUint32(0, dims.length, true);
    dims.forEach((d, k) => view.setBigUint64(4 + 8 * k, BigInt(d), true));
    view.setUint32(4 + 8 * dims.length, t.ggmlType, true);
    view.setBigUint64(8 + 8 * dims.length, BigInt(offset), true);
    infos.push(ggufString(t.name), info);
    offset += sizes[i] + pad(sizes[i]);
  });
  try {
    writeFileAtomic(file, (fd) => {
      writeAll(fd, header);
      let written = header.length;
      for (const b of infos) {
        writeAll(fd, b);
        written += b.length;
      }
      writeAll(fd, new Uint8Array(pad(written)));
      tensors.forEach((t, i) => {
        withScope(() => writeAll(fd, encode(values(t.hfName, t.tensor, layout, c), t.ggmlType)));
        writeAll(fd, new Uint8Array(pad(sizes[i])));
      });
    });
  } finally {
    for (const [, t] of extra) t.dispose();
  }
}

/**
 * A matrix's ggml type. q4_k_m as llama.cpp mixes it: q6_K for the output projection (the embeddings when tied)
 * and for attn_v and ffn_down in the first and last eighth of the layers and every third one between (its
 * use_more_bits), q5_K for a fused attn_qkv, q4_K elsewhere. Rows that are not whole blocks fall back as in
 * llama.cpp (q4_K to q5_0, q5_K to q5_1, q6_K to q8_0), then to f16.
 */
function matrixType(type: GgufType, name: string, rowLength: number, c: ModelConfig): number {
  let wanted: number;
  if (type !== 'q4_k_m') wanted = MATRIX_TYPE[type];
  else {
    const n = c.numLayers;
    const layer = Number(/^blk\.(\d+)\./.exec(name)?.[1] ?? -1);
    const eighth = Math.floor(n / 8);
    const moreBits = layer >= 0 && (layer < eighth || layer >= Math.floor((7 * n) / 8) || (layer - eighth) % 3 === 2);
    const output = name === 'output.weight' || (name === 'token_embd.weight' && c.tieWordEmbeddings);
    const wide = output || (moreBits && /\.(attn_v|ffn_down)\.weight$/.test(name));
    wanted = wide ? GGML.Q6_K : /\.attn_qkv\.weight$/.test(name) ? GGML.Q5_K : GGML.Q4_K;
  }
  if (BLOCKS[wanted] && rowLength % BLOCKS[wanted].values !== 0) wanted = K_FALLBACK[wanted] ?? GGML.F16;
  if (BLOCKS[wanted] && rowLength % BLOCKS[wanted].values !== 0) wanted = GGML.F16;
  return wanted;
}

function values(hfName: string, t: Tensor, layout: GgufLayout, c: ModelConfig): Float32Array {
  const data = (t.dtype === 'f32' ? t : t.toF32()).data as Float32Array;
  const converted = layout.convert?.(hfName, data, t.shape, c);
  if (converted) return converted;
  if (layout.normShift && /norm\.weight$/.test(hfName)) return data.map((v) => v + layout.normShift);
  if (!layout.interleaveQK) return data;
  if (/self_attn\.q_proj\.(weight|bias)$/.test(hfName))
    return interleaveHeads(data, t.shape[0], t.shape[1] ?? 1, c.numHeads);
  if (/self_attn\.k_proj\.(weight|bias)$/.test(hfName))
    return interleaveHeads(data, t.shape[0], t.shape[1] ?? 1, c.numKvHeads);
  return data;
}
