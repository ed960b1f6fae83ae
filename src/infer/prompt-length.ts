/**
 * A prompt's length checked before it is tokenised for real: an over-long request must be refused fast and
 * must not stop the server (tokenising 2 MB of text takes seconds of the one event loop). First a bound from
 * the character count (no token is longer than the vocabulary's longest spelling), then a count in slices
 * with the event loop served between them, stopping as soon as the limit is passed.
 */
import type { HfTokenizer } from '../data/tokenizer.js';

/** Characters tokenised between two turns of the event loop. */
const SLICE_CHARS = 8192;

export type LengthVerdict = { ok: true } | { ok: false; atLeast: number };

/** Pieces of at most about SLICE_CHARS characters, cut after whitespace where there is some near the end. */
function* slices(text: string): Generator<string> {
  let at = 0;
  while (at < text.length) {
    let end = Math.min(text.length, at + SLICE_CHARS);
    if (end < text.length) {
      const space = text.lastIndexOf(' ', end);
      if (space > at + SLICE_CHARS / 2) end = space + 1;
    }
    yield text.slice(at, end);
    at = end;
  }
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Whether `texts` can fit in `limit` tokens. Refuses at once when even the longest tokens could not cover the
 * characters; otherwise counts slice by slice. Cutting text into slices adds at most a token or two at each
 * cut, so the count is only trusted to refuse beyond that margin; a prompt near the limit is decided by the
 * exact encoding that follows.
 */
export async function checkPromptLength(tok: HfTokenizer, texts: string[], limit: number): Promise<LengthVerdict> {
  const chars = texts.reduce((a, t) => a + t.length, 0);
  const fewest = Math.ceil(chars / tok.vocabularyFacts.maxTokenChars);
  if (fewest > limit) return { ok: false, atLeast: fewest };
  let counted = 0,
    cuts = 0;
  for (const text of texts) {
    for (const piece of slices(text)) {
      counted += tok.encode(piece).length;
      cuts++;
      if (counted > limit + 2 * cuts) return { ok: false, atLeast: counted - 2 * cuts };
      if (text.length > SLICE_CHARS) await nextTurn();
    }
  }
  return { ok: true };
}
