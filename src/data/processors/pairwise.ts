/**
 * Preference pairs (rm, dpo): the prompt is encoded once and shared by the chosen and the rejected answer;
 * the budget is split between the prompt and the longer answer; prompt tokens get no loss.
 */
import type { AlignedExample } from '../messages.js';
import type { TextTokenizer } from '../tokenizer.js';
import {
  efficientEos,
  encodeOptions,
  IGNORE,
  inferSeqlen,
  type AnyTemplate,
  type Encoded,
  type ProcessOptions,
} from './common.js';

export interface EncodedPair {
  chosen: Encoded;
  rejected: Encoded;
}

/** Prompt ids and answer ids of a one-turn encoding (everything before the last message is prompt). */
export function encodeOneTurn(
  t: AnyTemplate,
  tok: TextTokenizer,
  e: AlignedExample,
  answer: AlignedExample['response'][number],
  o: ProcessOptions,
): [number[], number[]] {
  const pairs = t.encodeMultiturn(tok, [...e.prompt, answer], encodeOptions(e, o));
  const prompt = pairs.flatMap(([s, tg], i) => (i < pairs.length - 1 ? [...s, ...tg] : s));
  const target = [...pairs[pairs.length - 1][1]];
  const eos = t.eosId(tok);
  if (efficientEos(t) && eos !== null) target.push(eos);
  return [prompt, target];
}

export function encodePairwise(t: AnyTemplate, tok: TextTokenizer, e: AlignedExample, o: ProcessOptions): EncodedPair {
  const [prompt, chosen] = encodeOneTurn(t, tok, e, e.response[0], o);
  const [, rejected] = encodeOneTurn(t, tok, e, e.response[1], o);
  const [sl, tl] = inferSeqlen(prompt.length, Math.max(chosen.length, rejected.length), o.cutoffLen);
  const p = prompt.slice(0, sl);
  const make = (answer: number[]): Encoded => {
    const a = answer.slice(0, tl);
    return { ids: [...p, ...a], labels: [...new Array<number>(p.length).fill(IGNORE), ...a] };
  };
  return { chosen: make(chosen), rejected: make(rejected) };
}
