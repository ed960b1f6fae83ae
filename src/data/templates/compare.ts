/**
 * Does the named template render a conversation as the tokenizer's own chat_template does? LLaMA-Factory users'
 * most common silent mistake is a template that does not match the model (the model then never learns where
 * its answer ends, and repeats itself). Both render one sample conversation; the first turn that differs is named.
 */
import type { Message } from '../messages.js';
import type { TextTokenizer } from '../tokenizer.js';
import { JinjaChatTemplate } from './jinja.js';
import type { ChatTemplate } from './template.js';

const SYSTEM = 'You are a helpful assistant.';
const SAMPLE: Message[] = [
  { role: 'user', content: 'Hello, who are you?' },
  { role: 'assistant', content: 'I am an assistant.' },
  { role: 'user', content: 'What is 2 + 2?' },
  { role: 'assistant', content: 'It is 4.' },
];

/** A turn's text, without an empty reasoning block (LLaMA-Factory's reasoning templates add one where HF's drop it). */
const text = (tok: TextTokenizer, ids: number[]) => tok.decode(ids).replace(/<think>\s*<\/think>\s*/g, '');

/** A one-line description of the first difference, or null when they agree or the tokenizer has no chat_template. */
export function templateMismatch(named: ChatTemplate, tok: TextTokenizer): string | null {
  if (!tok.chatTemplate) return null;
  let ours: [number[], number[]][], theirs: [number[], number[]][];
  try {
    ours = named.encodeMultiturn(tok, SAMPLE, { system: SYSTEM });
    theirs = new JinjaChatTemplate(tok).encodeMultiturn(tok, SAMPLE, { system: SYSTEM });
  } catch {
    return null; // a chat_template that cannot be split into turns is not one to compare with
  }
  for (let turn = 0; turn < ours.length; turn++) {
    for (const [part, k] of [
      ['prompt', 0],
      ['answer', 1],
    ] as const) {
      const a = text(tok, ours[turn][k]),
        b = text(tok, theirs[turn]?.[k] ?? []);
      if (a === b) continue;
      return `template "${named.name}" renders turn ${turn + 1}'s ${part} as ${JSON.stringify(a)}, the tokenizer's chat_template as ${JSON.stringify(b)}`;
    }
  }
  return null;
}
