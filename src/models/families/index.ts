/** Every model family, by config.json model_type: adding one is a module here, its fixture and its test. */
import type { Family } from '../family.js';
import { gemma2, gemma3 } from './gemma.js';
import { llama } from './llama.js';
import { mistral } from './mistral.js';
import { phi3 } from './phi3.js';
import { qwen2 } from './qwen2.js';
import { qwen3 } from './qwen3.js';
import { qwen3_5 } from './qwen3_5.js';
import { smollm3 } from './smollm3.js';

export const families: readonly Family[] = [llama, mistral, qwen2, qwen3, gemma3, gemma2, phi3, smollm3, qwen3_5];

/** Architectures users bring that are known but not implemented, and why. */
export const refusedModelTypes: Record<string, string> = {
  qwen3_moe: 'Qwen3-MoE is a mixture-of-experts model (sparse expert layers are not implemented)',
  qwen3_next: 'Qwen3-Next mixes linear attention and experts (not implemented)',
  qwen3_5_moe: 'Qwen3.5-MoE is a mixture-of-experts model (sparse expert layers are not implemented; dense Qwen3.5 is)',
  qwen3_5_moe_text:
    'Qwen3.5-MoE is a mixture-of-experts model (sparse expert layers are not implemented; dense Qwen3.5 is)',
  qwen2_moe: 'Qwen2-MoE is a mixture-of-experts model (sparse expert layers are not implemented)',
  mixtral: 'Mixtral is a mixture-of-experts model (sparse expert layers are not implemented)',
  gemma3n: 'Gemma 3n uses per-layer embeddings and AltUp (not implemented)',
  phimoe: 'Phi-3.5-MoE is a mixture-of-experts model (sparse expert layers are not implemented)',
  phi: 'Phi-1/Phi-2 use LayerNorm and a parallel block (not implemented; Phi-3 and Phi-4-mini are)',
};

export function familyById(id: string): Family {
  const f = families.find((x) => x.id === id);
  if (!f) throw new Error(`no model family "${id}"`);
  return f;
}
