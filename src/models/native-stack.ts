/**
 * Decoding's layer stack in one native call (native/src/decode_stack.cc). For one sequence's few new tokens it
 * runs what DecoderLayer.forward runs with a KV cache, on the same kernels in the same order (the same bits),
 * without returning to JavaScript between them: one token of a SmolLM2-sized model made ~420 native calls, and
 * the JavaScript around them cost ~2 ms of ~18 (it runs on caches the weight stream has just emptied).
 * A live LoRA adapter's update and a quantized base's 4-bit or 8-bit codes are read there too. Everything else takes
 * the layered path: linear-attention layers (Qwen3.5), an attention output gate, 8-bit bases unless their panels are
 * f32 and unrounded, DoRA and stacked adapters, several sequences at once, more than four new tokens (prompts), and
 * anything recording gradients.
 */
import { GEMV_MAX_ROWS, native, type DecodeLayerBuffers } from '../native.js';
import { isRecording } from '../tensor/autograd.js';
import { rmsnormScale } from '../tensor/ops/index.js';
import { matmulWeight } from '../tensor/ops/linear.js';
import { inPlaceInt8, registerCodes, type QuantizedMatrix } from '../tensor/quantized.js';
import type { RopeTables } from '../tensor/ops/rope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Linear } from '../nn/linear.js';
import type { ModelConfig } from './config.js';
import type { DecoderLayer } from './decoder.js';
import { GatedDeltaNet } from './gated-deltanet.js';
import type { KvCache } from './kv-cache.js';

/** Whether `rows` new tokens of one sequence can go through these layers natively. */
export function runsNatively(layers: readonly DecoderLayer[], c: ModelConfig, rows: number): boolean {
  if (rows > GEMV_MAX_ROWS || c.attentionOutputGate || isRecording()) return false;
  return layers.every(
    (layer) =>
      !(layer.proj.mixer instanceof GatedDeltaNet) &&
      layer
        .projections()
        .every(
          ([, lin]) =>
            (!lin.quantized || registerCodes(lin.quantized) || inPlaceInt8(lin.quantized)) &&
            (!lin.delta?.enabled || lin.delta.lowRank?.()),
        ),
  );
}

/**
 * h [rows, C] through every layer, in place; each layer's key and value rows go into the cache after its
 * `length` rows (room reserved by the caller, who commits them). tables: each layer's rotary tables, or null.
 */
export function runNativeStack(
  h: Tensor<'f32'>,
  layers: readonly DecoderLayer[],
  c: ModelConfig,
  cache: KvCache,
  tables: readonly (RopeTables | null)[],
): void {
  const rows = h.size / c.hiddenSize;
  const buffers = layers.map((layer, l) => layerBuffers(layer, c, cache, l, tables[l]));
  native.decodeLayers(
    h.data,
    buffers,
    rows,
    cache.length,
    c.hiddenSize,
    c.numHeads,
    c.numKvHeads,
    c.headDim,
    c.intermediateSize,
    c.rmsNormEps,
    c.attentionScale,
    c.attentionSoftcap ?? 0,
    c.activation === 'gelu_tanh',
  );
}

/** One layer's buffers in decode_stack.cc's slot order (its `Slot` enum). */
function layerBuffers(
  layer: DecoderLayer,
  c: ModelConfig,
  cache: KvCache,
  l: number,
  t: RopeTables | null,
): DecodeLayerBuffers {
  const { norms, proj } = layer;
  const { mixer, mlp } = proj;
  if (mixer instanceof GatedDeltaNet) throw new Error(`layer ${l} is a linear-attention layer (runsNatively says no)`);
  const norm = (w: Tensor<'f32'> | null) => (w ? rmsnormScale(w, c.normOffset).data : null);
  // [weight, bias, LoRA A, LoRA B, scale]: decode_stack.cc's projection entries (null: not this layer's shape)
  const projection = (lin: Linear | null) => {
    if (!lin) return null;
    const update = lin.delta?.enabled ? lin.delta.lowRank?.() : null;
    return [
      lin.quantized ? quantizedEntry(lin.quantized) : matmulWeight(lin.weight).data,
      lin.bias?.data ?? null,
      update?.A.data ?? null,
      update?.B.data ?? null,
      update?.scale ?? 0,
    ];
  };
  const input = mixer.input;
  const fusedQkv = 'qkv' in input;
  const fusedGateUp = 'gateUp' in mlp;
  const { keys, values } = cache.rows(l);
  return [
    norm(norms.attnIn),
    norm(norms.attnOut),
    norm(norms.mlpIn),
    norm(norms.mlpOut),
    norm(norms.q),
    norm(norms.k),
    projection(fusedQkv ? input.qkv : null),
    projection(fusedQkv ? null : input.q),
    projection(fusedQkv ? null : input.k),
    projection(fusedQkv ? null : input.v),
    projection(mixer.o),
    projection(fusedGateUp ? mlp.gateUp : null),
    projection(fusedGateUp ? null : mlp.gate),
    projection(fusedGateUp ? null : mlp.up),
    projection(proj.down),
    keys,
    values,
    t?.cos.data ?? null,
    t?.sin.data ?? null,
    t?.rotaryDim ?? 0,
    c.layerSpecs[l].window ?? 0,
  ];
}

/**
 * A quantized base's weight as decode_stack.cc reads it: 8-bit codes and row scales (its `Int8Slot` order,
 * gemvInt8's operands), or 4-bit codes (its `FourBitSlot` order, gemv4bit's operands).
 */
function quantizedEntry(q: QuantizedMatrix): (Int8Array | Uint8Array | Float32Array | number | null)[] {
  const int8 = inPlaceInt8(q);
  if (int8) return [int8.codes, int8.scales];
  const d = registerCodes(q);
  if (!d) throw new Error('a quantized weight the native stack cannot read (runsNatively says no)');
  const a = d.absmax;
  return a instanceof Float32Array
    ? [d.packed, a, d.table, d.blocksize, null, null, 0, 0, null]
    : [d.packed, null, d.table, d.blocksize, a.codes, a.nestedAbsmax, a.nestedBlocksize, a.offset, a.map];
}
