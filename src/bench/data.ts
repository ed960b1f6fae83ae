/**
 * `lmf bench data`: templating + tokenising speed for alpaca-style SFT examples of about 200 tokens, on the
 * worker pool the trainer uses. The text is made of the tokenizer's own whole-word tokens drawn with
 * Zipf's law (rank ~ token id), so word repetition is like natural text without shipping a corpus.
 */
import { configSchema } from '../config/schema.js';
import type { AlignedExample } from '../data/messages.js';
import { lengthsOf, processAll } from '../data/pipeline.js';
import { resolveTemplate } from '../data/templates/registry.js';
import { HfTokenizer } from '../data/tokenizer.js';
import { Rng } from '../tensor/random.js';

export interface DataBenchOptions {
  tokenizer: string;
  template: string;
  examples: number;
  workers: number;
}

function zipfWords(tok: HfTokenizer): string[] {
  return [...tok.vocabulary()]
    .filter(([t]) => /^(Ġ|▁)[a-z]{2,}$/.test(t))
    .sort((a, b) => a[1] - b[1])
    .map(([t]) => t.slice(1));
}

export function syntheticExamples(tok: HfTokenizer, count: number, seed: number): AlignedExample[] {
  const words = zipfWords(tok);
  const cdf: number[] = [];
  let total = 0;
  for (let r = 0; r < words.length; r++) cdf.push((total += 1 / (r + 10)));
  const rng = new Rng(seed);
  const word = () => {
    const u = rng.uniform() * total;
    let lo = 0,
      hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return words[lo];
  };
  const sentence = (n: number) => {
    const w = Array.from({ length: n }, word);
    w[0] = w[0][0].toUpperCase() + w[0].slice(1);
    return `${w.join(' ')}.`;
  };
  const text = (n: number) => Array.from({ length: Math.ceil(n / 12) }, () => sentence(12)).join(' ');
  return Array.from({ length: count }, (_, i) => ({
    prompt: [{ role: 'user' as const, content: text(48) }],
    response: [{ role: 'assistant' as const, content: text(132) }],
    system: '',
    tools: '',
    source: { file: 'synthetic', row: i + 1 },
  }));
}

export async function runDataBench(o: DataBenchOptions) {
  const tok = HfTokenizer.fromDir(o.tokenizer);
  const config = configSchema.parse({
    model_name_or_path: o.tokenizer,
    template: o.template,
    cutoff_len: 4096,
    preprocessing_num_workers: o.workers,
  });
  const template = resolveTemplate(config.template, tok);
  const items = syntheticExamples(tok, o.examples, 1);
  const engine = tok.hasBatchEncoder() ? 'rust-batch' : o.workers > 1 ? 'js-workers' : 'js'; // loads the files before timing
  const t0 = performance.now();
  const set = await processAll('sft', items, template, tok, config);
  const seconds = (performance.now() - t0) / 1000;
  const tokens = lengthsOf(set).reduce((a, b) => a + b, 0);
  return {
    tokenizer: o.tokenizer,
    template: o.template,
    engine,
    workers: engine === 'js-workers' ? o.workers : 1,
    examples: items.length,
    tokens_per_example: Math.round(tokens / items.length),
    examples_per_s: Math.round(items.length / seconds),
    tokens_per_s: Math.round(tokens / seconds),
    seconds: Math.round(seconds * 100) / 100,
  };
}
