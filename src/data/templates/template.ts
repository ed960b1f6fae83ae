/**
 * Chat templates in LLaMA-Factory's model: each role has a formatter, a list of slots; a slot is text with
 * {{content}} (and {{idx}}, the turn number), the tokenizer's BOS or EOS, or one special token by name.
 * Every text slot is tokenised on its own and the ids are concatenated, and every message is encoded
 * separately, exactly as LLaMA-Factory does, so a model trained there sees the same ids here.
 */
import { LmfError } from '../../errors.js';
import type { Message } from '../messages.js';
import type { TextTokenizer } from '../tokenizer.js';
import { formatCalls, formatTools, parseFunctionCalls, parseTools, type ToolFormat } from './tools.js';
import { pushAll } from '../../util/arrays.js';

export type Slot = string | { special: 'bos' | 'eos' } | { token: string };

export interface TemplateSpec {
  name: string;
  user: Slot[];
  assistant: Slot[];
  system: Slot[];
  /** defaults to the user formatter */
  observation?: Slot[];
  /** defaults to the assistant formatter (with the calls rendered by toolFormat) */
  function?: Slot[];
  prefix: Slot[];
  defaultSystem: string;
  stopWords: string[];
  /** the assistant turn carries no EOS; SFT labels the start of the next turn with EOS instead */
  efficientEos: boolean;
  /** EOS becomes stopWords[0] (<|im_end|>, <|eot_id|> …) */
  replaceEos: boolean;
  /** the system text is fused into the first user message (LLaMA-2, Mistral, Gemma) */
  systemInFirstUser: boolean;
  /** Qwen3-style reasoning: <think> blocks handled per enable_thinking */
  reasoning: boolean;
  thoughtWords: [string, string];
  toolFormat: ToolFormat;
}

export const BOS: Slot = { special: 'bos' };
export const EOS: Slot = { special: 'eos' };

function fill(slots: Slot[], content: string, idx: number): Slot[] {
  return slots.map((s) =>
    typeof s === 'string' ? s.replaceAll('{{content}}', content).replaceAll('{{idx}}', String(idx)) : s,
  );
}

export interface EncodeOptions {
  system?: string;
  tools?: string;
  /** thinking on (true), off (false) or per example (null); only for reasoning templates */
  enableThinking?: boolean | null;
}

export class ChatTemplate {
  readonly spec: TemplateSpec;

  constructor(spec: TemplateSpec) {
    this.spec = spec;
  }

  get name(): string {
    return this.spec.name;
  }

  /** The EOS id a model trained with this template stops on. */
  get toolFormat(): ToolFormat {
    return this.spec.toolFormat;
  }

  eosId(tok: TextTokenizer): number | null {
    if (this.spec.replaceEos && this.spec.stopWords.length) {
      const id = tok.tokenId(this.spec.stopWords[0]);
      if (id === null) {
        throw new LmfError(
          'bad_template',
          `template ${this.name} stops on "${this.spec.stopWords[0]}", which is not a token of this tokenizer`,
          {
            hint: "pick the template that belongs to the model, or leave template unset to use the tokenizer's chat_template",
          },
        );
      }
      return id;
    }
    return tok.eosId;
  }

  /** Ids of every token that ends a generation. */
  stopIds(tok: TextTokenizer): number[] {
    const ids = new Set<number>();
    const eos = this.eosId(tok);
    if (eos !== null) ids.add(eos);
    for (const w of this.spec.stopWords) {
      const id = tok.tokenId(w);
      if (id !== null) ids.add(id);
    }
    return [...ids];
  }

  private toIds(tok: TextTokenizer, slots: Slot[]): number[] {
    const ids: number[] = [];
    for (const s of slots) {
      if (typeof s === 'string') {
        if (s.length) pushAll(ids, tok.encode(s));
      } else if ('special' in s) {
        const id = s.special === 'bos' ? tok.bosId : this.eosId(tok);
        if (id !== null) ids.push(id);
      } else {
        const id = tok.tokenId(s.token);
        if (id === null)
          throw new LmfError(
            'bad_template',
            `template ${this.name} needs the token ${s.token}, which this tokenizer lacks`,
          );
        ids.push(id);
      }
    }
    return ids;
  }

  /** One token list per message (LLaMA-Factory's Template._encode). */
  encodeMessages(tok: TextTokenizer, messages: Message[], o: EncodeOptions = {}): number[][] {
    const s = this.spec;
    const system = o.system || s.defaultSystem;
    const toolText = o.tools ? formatTools(s.toolFormat, parseTools(o.tools)) : '';
    const out: number[][] = [];
    messages.forEach((m, i) => {
      const elements: Slot[] = [];
      let content = m.content;
      if (i === 0) {
        pushAll(elements, s.prefix);
        if (system || toolText) {
          const sys = fill(s.system, system + toolText, 0);
          if (s.systemInFirstUser) content = sys.filter((x): x is string => typeof x === 'string').join('') + content;
          else pushAll(elements, sys);
        }
      }
      const idx = Math.floor(i / 2);
      switch (m.role) {
        case 'user':
          pushAll(elements, fill(s.user, content, idx));
          break;
        case 'assistant':
          pushAll(elements, fill(s.assistant, content, idx));
          break;
        case 'observation':
          pushAll(elements, fill(s.observation ?? s.user, content, idx));
          break;
        case 'function': {
          const text = formatCalls(s.toolFormat, parseFunctionCalls(content));
          pushAll(elements, fill(s.function ?? s.assistant, text, idx));
          break;
        }
        case 'system':
          throw new LmfError('bad_messages', 'a system message may only come first', {
            hint: 'pass it as the system prompt',
          });
      }
      out.push(this.toIds(tok, elements));
    });
    return out;
  }

  /**
   * (source, target) per turn: user side and assistant side of each exchange. Reasoning templates: with
   * thinking off, earlier answers lose their <think> blocks and a turn whose answer has none gets an empty
   * block at the end of its prompt (not trained); with thinking on, the empty block starts the answer (trained).
   */
  encodeMultiturn(tok: TextTokenizer, messages: Message[], o: EncodeOptions = {}): [number[], number[]][] {
    const thinking = o.enableThinking ?? true;
    const msgs =
      this.spec.reasoning && thinking === false
        ? messages.map((m) => (m.role === 'assistant' ? { ...m, content: this.removeThought(m.content) } : m))
        : messages;
    const encoded = this.encodeMessages(tok, msgs, o);
    const pairs: [number[], number[]][] = [];
    for (let i = 0; i + 1 < encoded.length; i += 2) {
      let [source, target] = [encoded[i], encoded[i + 1]];
      if (this.spec.reasoning && o.enableThinking !== null && !this.hasThought(msgs[i + 1].content)) {
        const empty = tok.encode(this.emptyThought());
        if (thinking) target = [...empty, ...target];
        else source = [...source, ...empty];
      }
      pairs.push([source, target]);
    }
    return pairs;
  }

  /** Prompt ids for generation: every message, then the assistant header (ends on a user turn). */
  encodePrompt(tok: TextTokenizer, messages: Message[], o: EncodeOptions = {}): number[] {
    const withDummy = [...messages, { role: 'assistant' as const, content: '' }];
    const encoded = this.encodeMessages(tok, withDummy, o);
    const ids = encoded.slice(0, -1).flat();
    return this.spec.reasoning && o.enableThinking === false ? [...ids, ...tok.encode(this.emptyThought())] : ids;
  }

  private emptyThought(): string {
    return this.spec.thoughtWords[0] + this.spec.thoughtWords[1];
  }

  private hasThought(text: string): boolean {
    const [open, close] = this.spec.thoughtWords;
    return text.includes(open.trim()) || text.includes(close.trim());
  }

  removeThought(text: string): string {
    const [open, close] = this.spec.thoughtWords.map((w) => w.trim());
    const a = text.indexOf(open);
    const b = text.indexOf(close);
    if (a === -1 || b === -1 || b < a) return text;
    return (text.slice(0, a) + text.slice(b + close.length)).replace(/^\s+/, '');
  }
}
