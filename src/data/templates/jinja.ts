/**
 * The tokenizer's own chat_template (Jinja), rendered with Hugging Face's JS engine, used when no named
 * template is configured. Turns are found by rendering the conversation up to each message: the text a
 * turn adds is its source (up to the generation prompt) and its target (the answer).
 */
import { Template } from '@huggingface/jinja';
import { LmfError } from '../../errors.js';
import type { Message } from '../messages.js';
import type { TextTokenizer } from '../tokenizer.js';
import type { EncodeOptions } from './template.js';
import type { ToolFormat } from './tools.js';

export class JinjaChatTemplate {
  readonly name = 'tokenizer chat_template';
  private template: Template;
  private tok: TextTokenizer;

  constructor(tok: TextTokenizer) {
    if (!tok.chatTemplate) {
      throw new LmfError('no_chat_template', 'no template is named and the tokenizer has no chat_template', {
        key: 'template',
        hint: 'set template (for example default, alpaca, chatml, llama3, qwen)',
      });
    }
    this.tok = tok;
    try {
      this.template = new Template(tok.chatTemplate);
    } catch (err) {
      throw new LmfError(
        'bad_chat_template',
        `the tokenizer's chat_template does not parse (${(err as Error).message})`,
        { key: 'template' },
      );
    }
  }

  /** how answers call tools: Qwen-style <tool_call> blocks when the template speaks of them */
  get toolFormat(): ToolFormat {
    return this.tok.chatTemplate?.includes('<tool_call>') ? 'qwen' : 'default';
  }

  render(messages: Message[], o: EncodeOptions & { addGenerationPrompt: boolean }): string {
    const all = o.system ? [{ role: 'system', content: o.system }, ...messages] : messages;
    try {
      return this.template.render({
        messages: all.map((m) => ({ role: m.role === 'observation' ? 'tool' : m.role, content: m.content })),
        add_generation_prompt: o.addGenerationPrompt,
        bos_token: this.tok.bosToken ?? '',
        eos_token: this.tok.eosToken ?? '',
        tools: o.tools ? JSON.parse(o.tools) : undefined,
        ...(o.enableThinking === false ? { enable_thinking: false } : {}),
      });
    } catch (err) {
      throw new LmfError(
        'bad_chat_template',
        `the tokenizer's chat_template failed to render (${(err as Error).message})`,
        { key: 'template' },
      );
    }
  }

  private notIncremental(): LmfError {
    return new LmfError(
      'bad_chat_template',
      'the chat_template does not render a conversation as a growing prefix, so turns cannot be masked',
      { key: 'template', hint: 'name a template that matches the model (for example qwen3, llama3)' },
    );
  }

  /**
   * Each turn's answer is the text between the prompt (rendered with the generation prompt) and the next
   * user turn's header, found by continuing the conversation with a sentinel user message. So a template
   * that always ends with an assistant header, or one that adds text only to a final answer, still yields
   * exactly the answer as it stands inside a longer conversation.
   */
  encodeMultiturn(_tok: TextTokenizer, messages: Message[], o: EncodeOptions = {}): [number[], number[]][] {
    const sentinel = '\u0001lmf-next-turn\u0001';
    const single = this.render([{ role: 'user', content: sentinel }], { addGenerationPrompt: false });
    const userHeader = single.slice(0, single.indexOf(sentinel));
    const pairs: [number[], number[]][] = [];
    let consumed = '';
    for (let i = 0; i + 1 < messages.length; i += 2) {
      const prompt = this.render(messages.slice(0, i + 1), { ...o, addGenerationPrompt: true });
      const continued = this.render([...messages.slice(0, i + 2), { role: 'user', content: sentinel }], {
        ...o,
        addGenerationPrompt: false,
      });
      const at = continued.indexOf(sentinel, prompt.length);
      if (!prompt.startsWith(consumed) || !continued.startsWith(prompt) || at < 0) throw this.notIncremental();
      const between = continued.slice(prompt.length, at);
      // the next turn's header is the token suffix that `between` shares with a lone user turn's header
      const ids = this.tok.encode(between);
      const headerIds = this.tok.encode(userHeader);
      let k = 0;
      while (k < ids.length && k < headerIds.length && ids[ids.length - 1 - k] === headerIds[headerIds.length - 1 - k])
        k++;
      const headerText = this.tok.decode(ids.slice(ids.length - k));
      if (!between.endsWith(headerText)) throw this.notIncremental();
      const answer = between.slice(0, between.length - headerText.length);
      pairs.push([this.tok.encode(prompt.slice(consumed.length)), ids.slice(0, ids.length - k)]);
      consumed = prompt + answer;
    }
    return pairs;
  }

  encodePrompt(_tok: TextTokenizer, messages: Message[], o: EncodeOptions = {}): number[] {
    return this.tok.encode(this.render(messages, { ...o, addGenerationPrompt: true }));
  }

  eosId(tok: TextTokenizer): number | null {
    return tok.eosId;
  }

  stopIds(tok: TextTokenizer): number[] {
    return tok.eosId === null ? [] : [tok.eosId];
  }
}
