/**
 * A Hugging Face tokenizer from a model folder (tokenizer.json + tokenizer_config.json), through
 * Hugging Face's own JS library. Encoding never adds special tokens unless asked: templates place them.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { LmfError } from '../errors.js';

export interface TextTokenizer {
  encode(text: string): number[];
  /** encode with the tokenizer's own special tokens (e.g. BOS for LLaMA), as for pre-training text */
  encodeWithSpecial(text: string): number[];
  decode(ids: ArrayLike<number>, skipSpecial?: boolean): string;
  /** id of a token given by its text, or null */
  tokenId(token: string): number | null;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  readonly vocabSize: number;
  /** the tokenizer's own Jinja chat template, if any */
  readonly chatTemplate: string | null;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
}

type TokenField = string | { content: string } | null | undefined;

function tokenText(t: TokenField): string | null {
  if (!t) return null;
  return typeof t === 'string' ? t : t.content;
}

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new LmfError('bad_tokenizer', `cannot read ${path.basename(file)} (${(err as Error).message})`, { file });
  }
}

export class HfTokenizer implements TextTokenizer {
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  readonly vocabSize: number;
  readonly chatTemplate: string | null;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  private tok: Tokenizer;
  private cache = new Map<string, number | null>();

  constructor(json: Record<string, unknown>, config: Record<string, unknown>) {
    this.tok = new Tokenizer(json, config);
    this.bosToken = tokenText(config.bos_token as TokenField);
    this.eosToken = tokenText(config.eos_token as TokenField);
    this.bosId = this.bosToken ? this.tokenId(this.bosToken) : null;
    this.eosId = this.eosToken ? this.tokenId(this.eosToken) : null;
    const pad = tokenText(config.pad_token as TokenField);
    this.padId = (pad ? this.tokenId(pad) : null) ?? this.eosId;
    this.vocabSize = this.tok.get_vocab(true).size;
    const tpl = config.chat_template;
    this.chatTemplate = typeof tpl === 'string' ? tpl
      : Array.isArray(tpl) ? ((tpl as { name: string; template: string }[]).find((t) => t.name === 'default')?.template ?? null) : null;
  }

  /** tokenizer.json and tokenizer_config.json from a model folder. */
  static fromDir(dir: string): HfTokenizer {
    const file = path.join(dir, 'tokenizer.json');
    if (!existsSync(file)) {
      throw new LmfError('tokenizer_missing', 'tokenizer.json not found', {
        file, hint: 'LMFactory reads the fast-tokenizer file tokenizer.json; save the tokenizer with transformers to make one',
      });
    }
    const cfgFile = path.join(dir, 'tokenizer_config.json');
    return new HfTokenizer(readJson(file), existsSync(cfgFile) ? readJson(cfgFile) : {});
  }

  encode(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  encodeWithSpecial(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: true }).ids;
  }

  decode(ids: ArrayLike<number>, skipSpecial = false): string {
    return this.tok.decode(Array.from(ids), { skip_special_tokens: skipSpecial, clean_up_tokenization_spaces: false });
  }

  tokenId(token: string): number | null {
    if (!this.cache.has(token)) this.cache.set(token, this.tok.token_to_id(token) ?? null);
    return this.cache.get(token)!;
  }
}
