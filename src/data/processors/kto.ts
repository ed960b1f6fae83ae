/**
 * KTO: one answer per prompt with a desirable/undesirable tag, plus a mismatched (prompt, answer) pair for
 * the KL estimate, made as TRL does: each prompt with the answer of the previous example in the dataset.
 */
import type { AlignedExample } from '../messages.js';
import type { TextTokenizer } from '../tokenizer.js';
import { IGNORE, inferSeqlen, type AnyTemplate, type Encoded, type ProcessOptions } from './common.js';
import { encodeOneTurn } from './pairwise.js';

export interface EncodedKto {
  example: Encoded;
  kl: Encoded;
  desirable: boolean;
}

export function encodeKto(
  t: AnyTemplate,
  tok: TextTokenizer,
  examples: AlignedExample[],
  o: ProcessOptions,
): EncodedKto[] {
  const encoded = examples.map((e) => encodeOneTurn(t, tok, e, e.response[0], o));
  return encoded.map(([prompt, answer], i) => {
    const [, klAnswer] = encoded[(i + encoded.length - 1) % encoded.length];
    const make = (a: number[]): Encoded => {
      const [sl, tl] = inferSeqlen(prompt.length, a.length, o.cutoffLen);
      const p = prompt.slice(0, sl);
      const cut = a.slice(0, tl);
      return { ids: [...p, ...cut], labels: [...new Array<number>(p.length).fill(IGNORE), ...cut] };
    };
    return { example: make(answer), kl: make(klAnswer), desirable: examples[i].ktoTag ?? true };
  });
}
