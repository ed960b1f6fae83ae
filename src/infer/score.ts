/** Scores of answers under a trained reward model: the value head read at each sequence's last token. */
import type { Message } from '../data/messages.js';
import { inferSeqlen } from '../data/processors/common.js';
import { encodeOneTurn } from '../data/processors/pairwise.js';
import { noGrad } from '../tensor/autograd.js';
import { withScope } from '../tensor/tensor.js';
import { padBatch } from '../data/collator.js';
import { lastTokenRows, type ValueHead } from '../models/value-head.js';
import type { InferenceModel } from './load.js';

/** One score per answer to the conversation `prompt` (which ends with a user turn), encoded as rm training encodes it. */
export function scoreAnswers(
  m: InferenceModel,
  head: ValueHead,
  prompt: Message[],
  answers: string[],
  system = '',
  cutoffLen = 4096,
): number[] {
  const rows = answers.map((content) => {
    const example = {
      prompt,
      response: [{ role: 'assistant' as const, content }],
      system,
      tools: '',
      source: { file: 'score', row: 0 },
    };
    const [p, a] = encodeOneTurn(m.template, m.tokenizer, example, example.response[0], {
      cutoffLen,
      trainOnPrompt: false,
      maskHistory: false,
      enableThinking: true,
    });
    const [sl, tl] = inferSeqlen(p.length, a.length, cutoffLen);
    const ids = [...p.slice(0, sl), ...a.slice(0, tl)];
    return { ids, labels: ids };
  });
  return noGrad(() =>
    withScope(() => {
      const input = padBatch(rows, m.tokenizer.padId ?? 0);
      const scores = head.scores(
        m.model.hidden(input),
        lastTokenRows(
          input.seq,
          rows.map((r) => r.ids.length),
        ),
      );
      return Array.from(scores.data);
    }),
  );
}
