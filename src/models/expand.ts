/**
 * LLaMA Pro's block expansion: after every num_layers / numExpand layers, a copy of the last one whose output
 * projections (o_proj, down_proj) are zero, so the added block passes its input through and the expanded model
 * computes what the original did. Training then updates only the added blocks (use_llama_pro). Families whose
 * layers differ from one another (windows, rotary settings) are refused: a copy would land on another setting.
 */
import { LmfError } from '../errors.js';
import type { ModelConfig } from './config.js';
import { buildDecoder, type DecoderModel } from './decoder.js';
import { Tensor } from '../tensor/tensor.js';

/** The model with numExpand zero-output blocks inserted; its config.json says num_hidden_layers. */
export function expandBlocks(model: DecoderModel, numExpand: number): DecoderModel {
  const c = model.config;
  const L = c.numLayers;
  if (!Number.isInteger(numExpand) || numExpand <= 0 || L % numExpand !== 0) {
    throw new LmfError('bad_value', `num_expand ${numExpand} must divide the ${L} layers`, {
      key: 'num_expand',
      hint: `use a divisor of ${L}`,
    });
  }
  const first = c.layerSpecs[0];
  if (c.linearAttention || c.layerSpecs.some((s) => s.window !== first.window || s.rope !== first.rope)) {
    throw new LmfError(
      'unsupported',
      'block expansion of a model whose layers differ (windows, rotary, linear attention) is not supported',
      {
        key: 'use_llama_pro',
      },
    );
  }
  const split = L / numExpand;
  // new layer index → [original layer, zero its output projections]
  const sources: [number, boolean][] = [];
  for (let i = 0; i < L; i++) {
    sources.push([i, false]);
    if ((i + 1) % split === 0) sources.push([i, true]);
  }
  const config: ModelConfig = {
    ...c,
    numLayers: sources.length,
    layerSpecs: sources.map(() => first),
    raw: { ...c.raw, num_hidden_layers: sources.length },
  };
  const byName = new Map(model.namedParameters());
  return buildDecoder(
    config,
    (name, shape, dtype) => {
      const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
      const [from, zero] = m ? sources[Number(m[1])] : [0, false];
      const source = byName.get(m ? `model.layers.${from}.${m[2]}` : name);
      if (!source) throw new LmfError('internal', `expansion: no parameter for ${name}`);
      const copy = copyAs(source, dtype);
      if (zero && /(self_attn\.o_proj|mlp\.down_proj)\./.test(name)) copy.data.fill(0);
      if (copy.shape.join() !== shape.join())
        throw new LmfError('internal', `expansion: ${name} has shape [${copy.shape}]`);
      return copy;
    },
    { dtype: model.embedTokens.dtype === 'bf16' ? 'bf16' : 'f32' },
  );
}

/** A copy of a parameter in the storage the new model wants. */
function copyAs(t: Tensor, dtype: 'f32' | 'bf16'): Tensor {
  if (t.dtype === dtype) {
    const out = Tensor.empty(t.shape, dtype);
    out.data.set(t.data as never);
    return out;
  }
  if (dtype === 'f32') return t.toF32();
  const wide = t.toF32();
  const out = wide.toBf16();
  wide.dispose();
  return out;
}

/** The layers LLaMA Pro trains: the added ones, one every num_layers / n (LLaMA-Factory's stride rule). */
export function expandedLayerIds(numLayers: number, n: number): number[] {
  const stride = Math.floor(numLayers / n);
  const ids: number[] = [];
  for (let i = stride - 1; i < numLayers + stride - 1; i += stride) ids.push(i);
  return ids;
}
