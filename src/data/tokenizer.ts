/**
 * A Hugging Face tokenizer from a model folder (tokenizer.json + tokenizer_config.json), through
 * Hugging Face's own JS library. Encoding never adds special tokens unless asked: templates place them.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Tokenizer } from '@huggingface/tokenizers';
import { LmfError } from '../errors.js';
import { requireModelFolder } from '../io/dirs.js';

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

/** The part of the Rust binding (npm `tokenizers`) used for batch encoding. */
interface RustTokenizer {
  encodeBatch(texts: string[], options: { addSpecialTokens: boolean }): Promise<{ getIds(): number[] }[]>;
}

function tokenText(t: TokenField): string | null {
  if (!t) return null;
  return typeof t === 'string' ? t : t.content;
}

/**
 * Word -> BPE pieces, kept in two generations: lookups are plain Map reads (the library's own LRU moves
 * every hit to the back of a Map, which became the most expensive step of tokenising), and when the young
 * generation is full it becomes the old one, so words in use survive.
 */
export class WordCache<V> {
  private young = new Map<string, V>();
  private old = new Map<string, V>();

  constructor(private readonly capacity: number) {}

  get(key: string): V | undefined {
    const v = this.young.get(key);
    if (v !== undefined) return v;
    const o = this.old.get(key);
    if (o !== undefined) this.put(key, o);
    return o;
  }

  put(key: string, value: V): void {
    if (this.young.size >= this.capacity) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
  }
}

/** The library's BPE remembers 10,000 words; natural text reuses far more, and a miss costs a merge loop. */
function enlargeWordCache(tok: Tokenizer): void {
  const model = tok.model as unknown as { cache?: unknown } | null;
  if (model && model.cache) model.cache = new WordCache(100_000);
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
  /** the folder it was loaded from (worker threads load their own copy from it) */
  dir: string | null = null;
  private tok: Tokenizer;
  private cache = new Map<string, number | null>();
  private shortTexts = new WordCache<number[]>(20_000);
  private recording: Set<string> | null = null;
  private prefetched: Map<string, number[]> | null = null;
  private batchEncoder: RustTokenizer | null | undefined;

  constructor(json: Record<string, unknown>, config: Record<string, unknown>) {
    this.tok = new Tokenizer(json, config);
    enlargeWordCache(this.tok);
    this.bosToken = tokenText(config.bos_token as TokenField);
    this.eosToken = tokenText(config.eos_token as TokenField);
    this.bosId = this.bosToken ? this.tokenId(this.bosToken) : null;
    this.eosId = this.eosToken ? this.tokenId(this.eosToken) : null;
    const pad = tokenText(config.pad_token as TokenField);
    this.padId = (pad ? this.tokenId(pad) : null) ?? this.eosId;
    this.vocabSize = this.tok.get_vocab(true).size;
    const tpl = config.chat_template;
    this.chatTemplate =
      typeof tpl === 'string'
        ? tpl
        : Array.isArray(tpl)
          ? ((tpl as { name: string; template: string }[]).find((t) => t.name === 'default')?.template ?? null)
          : null;
  }

  private vocabFacts: { maxTokenChars: number; maxId: number } | null = null;

  /** The longest token's text and the highest token id (from the vocabulary, computed once). */
  get vocabularyFacts(): { maxTokenChars: number; maxId: number } {
    if (!this.vocabFacts) {
      let maxTokenChars = 1,
        maxId = -1;
      // a token's vocabulary spelling is at least as long as the text it stands for (byte-level BPE spells a
      // byte as a character, SentencePiece's byte tokens are <0xNN>)
      for (const [text, id] of this.vocabulary()) {
        if (text.length > maxTokenChars) maxTokenChars = text.length;
        if (id > maxId) maxId = id;
      }
      this.vocabFacts = { maxTokenChars, maxId };
    }
    return this.vocabFacts;
  }

  /** tokenizer.json and tokenizer_config.json from a model folder. */
  static fromDir(dir: string): HfTokenizer {
    requireModelFolder(dir);
    const file = path.join(dir, 'tokenizer.json');
    if (!existsSync(file)) {
      throw new LmfError('tokenizer_missing', 'tokenizer.json not found', {
        file,
        hint: 'LMFactory reads the fast-tokenizer file tokenizer.json; save the tokenizer with transformers to make one',
      });
    }
    const cfgFile = path.join(dir, 'tokenizer_config.json');
    const tok = new HfTokenizer(readJson(file), existsSync(cfgFile) ? readJson(cfgFile) : {});
    tok.dir = dir;
    return tok;
  }

  /**
   * Ids of a text without special tokens added. Short texts (template headers, system prompts, repeated
   * questions) are remembered: every example repeats them.
   */
  encode(text: string): number[] {
    if (this.recording) {
      this.recording.add(text);
      return [];
    }
    const pre = this.prefetched?.get(text);
    if (pre) return pre.slice();
    if (text.length > 256) return this.tok.encode(text, { add_special_tokens: false }).ids;
    const cached = this.shortTexts.get(text);
    if (cached) return cached.slice();
    const ids = this.tok.encode(text, { add_special_tokens: false }).ids;
    this.shortTexts.put(text, ids);
    return ids.slice();
  }

  encodeWithSpecial(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: true }).ids;
  }

  decode(ids: ArrayLike<number>, skipSpecial = false): string {
    if (ids.length === 0) return '';
    return this.tok.decode(Array.from(ids), { skip_special_tokens: skipSpecial, clean_up_tokenization_spaces: false });
  }

  /**
   * Runs fn while recording the texts it asks to encode (each answered with no ids): the texts a batch of
   * examples needs can be collected first and then encoded all at once.
   */
  record(fn: () => void): string[] {
    this.recording = new Set();
    try {
      fn();
      return [...this.recording];
    } finally {
      this.recording = null;
    }
  }

  /**
   * Encodes many texts at once with Hugging Face's Rust binding (multi-threaded; an optional dependency)
   * and answers later encode() calls for them from the result. Returns false when the binding is absent.
   */
  async prefetch(texts: string[]): Promise<boolean> {
    const rust = this.rustTokenizer();
    if (!rust) return false;
    const encodings = await rust.encodeBatch(texts, { addSpecialTokens: false });
    this.prefetched = new Map(texts.map((t, i) => [t, encodings[i].getIds()]));
    return true;
  }

  /** Whether batch encoding through the Rust binding is available (it runs on its own native threads). */
  hasBatchEncoder(): boolean {
    return this.rustTokenizer() !== null;
  }

  clearPrefetch(): void {
    this.prefetched = null;
  }

  private rustTokenizer(): RustTokenizer | null {
    if (this.batchEncoder !== undefined) return this.batchEncoder;
    this.batchEncoder = null;
    if (!this.dir || process.env.LMF_JS_TOKENIZER) return null;
    try {
      const binding = createRequire(import.meta.url)('tokenizers') as {
        Tokenizer: { fromFile(file: string): RustTokenizer };
      };
      this.batchEncoder = binding.Tokenizer.fromFile(path.join(this.dir, 'tokenizer.json'));
    } catch {
      this.batchEncoder = null; // not installed, or no build for this platform: the JS library does the work
    }
    return this.batchEncoder;
  }

  /** Every token of the vocabulary by id (added tokens included). */
  vocabulary(): Map<string, number> {
    return this.tok.get_vocab(true);
  }

  tokenId(token: string): number | null {
    if (!this.cache.has(token)) this.cache.set(token, this.tok.token_to_id(token) ?? null);
    return this.cache.get(token)!;
  }
}

/**
 * Refuses a tokenizer that can produce ids past the model's embedding rows (a tokenizer from another model, or
 * tokens added without resizing the embeddings): such an id would index past the embedding table.
 */
export function checkTokenizerFits(tok: TextTokenizer, embeddingRows: number, modelDir: string): void {
  const maxId = tok instanceof HfTokenizer ? tok.vocabularyFacts.maxId : tok.vocabSize - 1;
  if (maxId < embeddingRows) return;
  throw new LmfError(
    'tokenizer_too_large',
    `the tokenizer has token ids up to ${maxId}, but the model has ${embeddingRows} embedding rows (vocab_size in config.json)`,
    {
      file: path.join(modelDir, 'tokenizer.json'),
      hint: 'use the tokenizer that belongs to this model, or resize the embeddings to the tokenizer before training',
    },
  );
}
