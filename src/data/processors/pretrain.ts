/**
 * pt: every document ends with EOS; with packing the documents are joined and cut into blocks of exactly
 * cutoff_len tokens (the last partial block is dropped), each starting with BOS when the tokenizer uses one.
 * Without packing each document is truncated to cutoff_len. Labels are the ids.
 */
import type { AlignedExample } from '../messages.js';
import type { TextTokenizer } from '../tokenizer.js';
import type { Encoded } from './common.js';

export function documentIds(tok: TextTokenizer, e: AlignedExample, eosId: number | null): number[] {
  const ids = tok.encode(e.prompt[0]?.content ?? '');
  if (eosId !== null) ids.push(eosId);
  return ids;
}

/** True when the tokenizer's own encoding starts sequences with BOS (LLaMA, not Qwen). */
function addsBos(tok: TextTokenizer): boolean {
  return tok.bosId !== null && tok.encodeWithSpecial('a')[0] === tok.bosId;
}

export function packDocuments(tok: TextTokenizer, docs: number[][], cutoffLen: number): Encoded[] {
  const bos = addsBos(tok) ? tok.bosId : null;
  const all = docs.flat();
  const blocks: Encoded[] = [];
  for (let start = 0; start + cutoffLen <= all.length; start += cutoffLen) {
    const ids = all.slice(start, start + cutoffLen);
    if (bos !== null) ids[0] = bos;
    blocks.push({ ids, labels: ids.slice() });
  }
  return blocks;
}

export function truncateDocuments(docs: number[][], cutoffLen: number): Encoded[] {
  return docs
    .filter((d) => d.length > 0)
    .map((d) => {
      const ids = d.slice(0, cutoffLen);
      return { ids, labels: ids.slice() };
    });
}
