/**
 * Greedy generation by recomputing the whole sequence at each step: simple and exact, for short answers
 * (the quickstart, tests). The KV-cache engine with sampling belongs to `lmf chat` / `lmf api`.
 */
import type { Message } from '../data/messages.js';
import type { AnyTemplate } from '../data/processors/common.js';
import type { TextTokenizer } from '../data/tokenizer.js';
import type { CausalLM } from '../models/registry.js';
import { noGrad } from '../tensor/autograd.js';
import { linear } from '../tensor/ops/index.js';
import { Tensor, withScope } from '../tensor/tensor.js';

export interface GenerateOptions {
  maxNewTokens: number;
  system?: string;
}

/** Next-token argmax after `ids`. */
function nextToken(model: CausalLM, ids: number[]): number {
  return noGrad(() => withScope(() => {
    const hidden = model.hidden({ ids: Int32Array.from(ids), batch: 1, seq: ids.length }); // [T, C]
    const C = model.config.hiddenSize;
    const last = Tensor.empty([1, C], 'f32');
    last.data.set(hidden.data.subarray((ids.length - 1) * C, ids.length * C));
    const row = linear(last, model.outputWeight); // [1, V]
    let best = 0;
    for (let v = 1; v < row.size; v++) if (row.data[v] > row.data[best]) best = v;
    return best;
  }));
}

/** The model's answer to a conversation (ending with a user turn), greedy, without special tokens. */
export function generateReply(model: CausalLM, tok: TextTokenizer, template: AnyTemplate, messages: Message[], o: GenerateOptions): string {
  const ids = template.encodePrompt(tok, messages, { system: o.system });
  const stops = new Set(template.stopIds(tok));
  const out: number[] = [];
  for (let i = 0; i < o.maxNewTokens; i++) {
    const next = nextToken(model, [...ids, ...out]);
    if (stops.has(next)) break;
    out.push(next);
  }
  return tok.decode(out, true).trim();
}
