/**
 * Text generation with KV caches: prefill a prompt, then decode a token at a time. Every sequence in flight
 * advances through one model call per step (prompts being prefilled and answers being decoded share the
 * matmuls), so a batch of prompts or many API streams cost little more than one.
 *   generate(): a batch of prompts to the end, synchronously (CLI, prediction, tests);
 *   GenerationEngine: requests arriving at any time, streamed, cancellable, with a bounded queue (chat, API).
 */
import { adaptThreads } from '../threads.js';
import type { TextTokenizer } from '../data/tokenizer.js';
import type { CausalLM } from '../models/registry.js';
import { noGrad } from '../tensor/autograd.js';
import { Rng } from '../tensor/random.js';
import { withScope } from '../tensor/tensor.js';
import type { KvCache } from '../models/kv-cache.js';
import { chooseToken, type SamplingParams } from './sampling.js';
import { maxOf, pushAll } from '../util/arrays.js';

export interface GenerationRequest {
  prompt: number[];
  sampling: SamplingParams;
  maxNewTokens: number;
  /** token ids that end the answer (not part of it): the template's and generation_config's EOS, and the caller's */
  stopIds: number[];
  /** strings that end the answer (cut before them) */
  stopStrings?: string[];
  seed?: number;
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface Completion {
  text: string;
  ids: number[];
  promptTokens: number;
  finishReason: FinishReason;
}

/** One request in flight: its cache, the tokens it has to feed next, and its answer so far. */
class Sequence {
  readonly cache: KvCache;
  /** the tokens whose keys and values the cache holds, in order */
  readonly fed: number[] = [];
  pending: number[];
  readonly out: number[] = [];
  text = '';
  finish: FinishReason | null = null;
  private emitted = 0;
  private prefixOffset = 0;
  private readOffset = 0;
  private readonly context: Set<number>;
  private readonly rng: Rng;
  private readonly stops: Set<number>;
  private readonly stopStrings: string[];
  private readonly holdBack: number;

  /** `reuse`: a finished sequence's cache whose first `keep` tokens are this prompt's first tokens */
  constructor(
    readonly request: GenerationRequest,
    model: CausalLM,
    private readonly tok: TextTokenizer,
    readonly onText?: (delta: string) => void,
    reuse?: { cache: KvCache; keep: number },
  ) {
    if (!request.prompt.length) throw new Error('generation needs a prompt of at least one token');
    // at least the prompt's last token is fed: its logits choose the first answer token
    const keep = reuse ? Math.min(reuse.keep, request.prompt.length - 1) : 0;
    this.cache = reuse?.cache ?? model.newCache();
    this.cache.truncate(keep);
    // a cache with recurrent states (linear attention) cannot be rewound and comes back empty
    const kept = this.cache.length;
    pushAll(this.fed, request.prompt.slice(0, kept));
    this.pending = request.prompt.slice(kept);
    this.context = new Set(request.prompt);
    this.rng = new Rng(request.seed ?? 0);
    this.stops = new Set(request.stopIds);
    this.stopStrings = (request.stopStrings ?? []).filter((s) => s.length > 0);
    this.holdBack = maxOf(
      this.stopStrings.map((s) => s.length - 1),
      0,
    );
    if (request.maxNewTokens <= 0) this.finish = 'length';
  }

  /** Takes the logits after the fed tokens: picks the next token and updates the answer. */
  accept(logits: Float32Array, maxPositions: number): void {
    const token = chooseToken(logits, this.context, this.request.sampling, this.rng);
    if (this.stops.has(token)) {
      this.end('stop');
      return;
    }
    this.out.push(token);
    this.context.add(token);
    this.pending = [token];
    this.appendText();
    if (this.finish) return;
    if (this.out.length >= this.request.maxNewTokens || this.cache.length + 1 >= maxPositions) this.end('length');
    else this.emit(false);
  }

  cancel(): void {
    this.finish = 'cancelled';
  }

  private end(reason: FinishReason): void {
    this.finish = reason;
    this.emit(true);
  }

  /** Incremental detokenisation (only complete characters): decode a window of recent tokens. */
  private appendText(): void {
    const before = this.tok.decode(this.out.slice(this.prefixOffset, this.readOffset), true);
    const after = this.tok.decode(this.out.slice(this.prefixOffset), true);
    if (after.length <= before.length || after.endsWith('\uFFFD')) return;
    const searchFrom = Math.max(0, this.text.length - this.holdBack);
    this.text += after.slice(before.length);
    this.prefixOffset = this.readOffset;
    this.readOffset = this.out.length;
    let cut = -1;
    for (const s of this.stopStrings) {
      const at = this.text.indexOf(s, searchFrom);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.text = this.text.slice(0, cut);
      this.end('stop');
    }
  }

  /** Streams what is certain: text that could still be the start of a stop string waits until the end. */
  private emit(final: boolean): void {
    const upTo = final ? this.text.length : this.text.length - this.holdBack;
    if (upTo > this.emitted) {
      this.onText?.(this.text.slice(this.emitted, upTo));
      this.emitted = upTo;
    }
  }

  completion(): Completion {
    return {
      text: this.text,
      ids: this.out,
      promptTokens: this.request.prompt.length,
      finishReason: this.finish ?? 'length',
    };
  }
}

/** One model call for every unfinished sequence, then one token chosen for each. */
function step(model: CausalLM, seqs: Sequence[]): void {
  const live = seqs.filter((s) => !s.finish);
  if (!live.length) return;
  adaptThreads();
  noGrad(() =>
    withScope(() => {
      const logits = model.extend(
        live.map((s) => s.pending),
        live.map((s) => s.cache),
      );
      for (const s of live) pushAll(s.fed, s.pending);
      const V = logits.shape[1];
      live.forEach((s, i) => s.accept(logits.data.subarray(i * V, (i + 1) * V), model.config.maxPositions));
    }),
  );
}

/** Answers to a batch of prompts, each to its end. */
export function generate(
  model: CausalLM,
  tok: TextTokenizer,
  requests: GenerationRequest[],
  onText?: (index: number, delta: string) => void,
): Completion[] {
  const seqs = requests.map((r, i) => new Sequence(r, model, tok, onText ? (d) => onText(i, d) : undefined));
  while (seqs.some((s) => !s.finish)) step(model, seqs);
  return seqs.map((s) => s.completion());
}

export class QueueFullError extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super('too many requests are waiting');
  }
}

export interface EngineOptions {
  /** sequences decoded together */
  maxActive: number;
  /** requests allowed to wait for a slot; more are refused (QueueFullError) */
  maxQueued: number;
  /** caches of finished requests kept for a next request that continues the conversation (default 4) */
  keepCaches?: number;
}

/** Length of the common prefix of two token lists. */
function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

interface Job {
  seq: Sequence;
  signal?: AbortSignal;
  resolve: (c: Completion) => void;
  reject: (e: unknown) => void;
}

/**
 * Requests from many clients: each is admitted when a slot is free and advances one token per step with
 * the others; the event loop runs between steps, so streams flush and disconnects (an aborted signal)
 * cancel promptly.
 */
export class GenerationEngine {
  private readonly active: Job[] = [];
  private readonly queue: Job[] = [];
  private running = false;
  /** finished conversations' caches, newest last: a chat's next turn feeds only its new tokens */
  private readonly kept: { fed: number[]; cache: KvCache }[] = [];
  /** prompt tokens served from kept caches instead of being computed again */
  reusedTokens = 0;

  constructor(
    private readonly model: CausalLM,
    private readonly tok: TextTokenizer,
    private readonly o: EngineOptions,
  ) {}

  get load(): { active: number; queued: number } {
    return { active: this.active.length, queued: this.queue.length };
  }

  submit(request: GenerationRequest, onText?: (delta: string) => void, signal?: AbortSignal): Promise<Completion> {
    if (this.active.length + this.queue.length >= this.o.maxActive + this.o.maxQueued) throw new QueueFullError(1);
    const seq = new Sequence(request, this.model, this.tok, onText, this.takeCache(request.prompt));
    this.reusedTokens += seq.fed.length;
    const done = new Promise<Completion>((resolve, reject) => this.queue.push({ seq, signal, resolve, reject }));
    if (!this.running) {
      this.running = true;
      setImmediate(() => void this.run()); // the caller finishes its turn (e.g. sends headers) first
    }
    return done;
  }

  /**
   * The kept cache sharing the longest prefix with `prompt` (at least 16 tokens), taken out of the list. A cache
   * that cannot be cut back (recurrent states) serves only a prompt that continues all of it.
   */
  private takeCache(prompt: number[]): { cache: KvCache; keep: number } | undefined {
    let best = -1,
      keep = 15;
    this.kept.forEach((k, i) => {
      const n = commonPrefix(k.fed, prompt);
      if (!k.cache.rewindable && (n < k.fed.length || prompt.length <= n)) return;
      if (n > keep) [best, keep] = [i, n];
    });
    if (best < 0) return undefined;
    const [k] = this.kept.splice(best, 1);
    return { cache: k.cache, keep };
  }

  private keep(seq: Sequence): void {
    if (seq.finish === 'cancelled' || !(this.o.keepCaches ?? 4)) return;
    this.kept.push({ fed: seq.fed, cache: seq.cache });
    if (this.kept.length > (this.o.keepCaches ?? 4)) this.kept.shift();
  }

  private async run(): Promise<void> {
    try {
      while (this.active.length || this.queue.length) {
        while (this.active.length < this.o.maxActive && this.queue.length) this.active.push(this.queue.shift()!);
        for (const job of [...this.active, ...this.queue]) if (job.signal?.aborted) job.seq.cancel();
        try {
          step(
            this.model,
            this.active.map((j) => j.seq),
          );
        } catch (err) {
          for (const job of this.active.splice(0)) job.reject(err);
        }
        for (const list of [this.active, this.queue]) {
          for (let i = list.length - 1; i >= 0; i--) {
            if (!list[i].seq.finish) continue;
            const [job] = list.splice(i, 1);
            this.keep(job.seq);
            job.resolve(job.seq.completion());
          }
        }
        await new Promise(setImmediate);
      }
    } finally {
      this.running = false;
    }
  }
}
