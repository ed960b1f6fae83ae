/**
 * The projections of the FLOP convention that every bench line states (README: Speed): their shapes, and the weights
 * that take part in a matmul per token.
 */
import { type ModelConfig } from '../models/config.js';
import { deltaChannels } from '../tensor/ops/index.js';

interface Projection {
  names: string[];
  n: number;
  k: number;
  count: number;
}

/**
 * The distinct projection shapes [N, K] of a forward pass, with the names that share each and their count: every
 * layer's q, k, v and o (an attention layer's q_proj twice as wide where it also yields the output gate, Qwen3.5)
 * or a Gated DeltaNet layer's in_proj_qkv, in_proj_z, in_proj_b, in_proj_a and out_proj; and gate, up and down.
 */
export function projectionShapes(c: ModelConfig): Projection[] {
  const C = c.hiddenSize,
    I = c.intermediateSize,
    qDim = c.numHeads * c.headDim,
    kvDim = c.numKvHeads * c.headDim;
  const la = c.linearAttention;
  const found = new Map<string, Projection>();
  const add = (name: string, n: number, k: number) => {
    const key = `${n}x${k}`;
    const p = found.get(key) ?? { names: [], n, k, count: 0 };
    if (!p.names.includes(name)) p.names.push(name);
    p.count++;
    found.set(key, p);
  };
  for (const spec of c.layerSpecs) {
    if (spec.linearAttention && la) {
      add('in_proj_qkv', deltaChannels(la), C);
      add('in_proj_z', la.valueHeads * la.valueDim, C);
      add('in_proj_b', la.valueHeads, C);
      add('in_proj_a', la.valueHeads, C);
      add('out_proj', C, la.valueHeads * la.valueDim);
    } else {
      add('q_proj', qDim * (c.attentionOutputGate ? 2 : 1), C);
      add('k_proj', kvDim, C);
      add('v_proj', kvDim, C);
      add('o_proj', C, qDim);
    }
    add('gate_proj', I, C);
    add('up_proj', I, C);
    add('down_proj', C, I);
  }
  return [...found.values()];
}

/** Weights that take part in a matmul per token (all projections + lm_head), the FLOP-count convention. */
export function matmulParams(c: ModelConfig): number {
  const projections = projectionShapes(c).reduce((n, p) => n + p.n * p.k * p.count, 0);
  return projections + c.hiddenSize * c.vocabSize;
}
