/**
 * sft: a conversation becomes (source, target) pairs, one per turn; sources get no loss (unless
 * train_on_prompt), every target does (only the last with mask_history). The cutoff_len budget is shared
 * turn by turn as LLaMA-Factory shares it, from the last turn backwards with mask_history.
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
import { pushAll } from '../../util/arrays.js';

export function encodeSupervised(
  t: AnyTemplate,
  tok: TextTokenizer,
  e: AlignedExample,
  o: ProcessOptions,
): Encoded & { truncated: boolean } {
  let pairs = t.encodeMultiturn(tok, [...e.prompt, ...e.response], encodeOptions(e, o));
  const eff = efficientEos(t);
  const eos = t.eosId(tok);
  let total = eff ? 1 : 0;
  let truncated = false;
  if (o.maskHistory) pairs = [...pairs].reverse();
  let ids: number[] = [];
  let labels: number[] = [];
  pairs.forEach(([fullSource, fullTarget], turn) => {
    if (total >= o.cutoffLen) {
      truncated = true;
      return;
    }
    const [sl, tl] = inferSeqlen(fullSource.length, fullTarget.length, o.cutoffLen - total);
    if (sl < fullSource.length || tl < fullTarget.length) truncated = true;
    const source = fullSource.slice(0, sl);
    const target = fullTarget.slice(0, tl);
    total += sl + tl;
    let sourceLabels: number[];
    if (o.trainOnPrompt) sourceLabels = source;
    else if (eff && turn !== 0 && eos !== null && sl > 0)
      sourceLabels = [eos, ...new Array<number>(sl - 1).fill(IGNORE)];
    else sourceLabels = new Array<number>(sl).fill(IGNORE);
    const targetLabels = o.maskHistory && turn !== 0 ? new Array<number>(tl).fill(IGNORE) : target;
    if (o.maskHistory) {
      ids = [...source, ...target, ...ids];
      labels = [...sourceLabels, ...targetLabels, ...labels];
    } else {
      pushAll(pushAll(ids, source), target);
      pushAll(pushAll(labels, sourceLabels), targetLabels);
    }
  });
  if (eff && eos !== null) {
    ids.push(eos);
    labels.push(eos);
  }
  return { ids, labels, truncated };
}
