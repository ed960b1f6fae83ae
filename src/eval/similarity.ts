/**
 * LLaMA-Factory's generation metrics, per example and ×100: BLEU-4 on characters (NLTK's sentence_bleu with
 * smoothing method 3) and ROUGE-1/2/L F-scores on words, where CJK text counts each character as a word
 * and other text splits into words and punctuation marks (as jieba then rouge_chinese see it). An empty
 * prediction or reference scores 0.
 */

const CJK = '[\\u3040-\\u30ff\\u3400-\\u4dbf\\u4e00-\\u9fff\\uf900-\\ufaff\\uac00-\\ud7af]';
/** a CJK character, a run of other letters and digits, or one punctuation mark */
const token = new RegExp(`${CJK}|(?:(?!${CJK})[\\p{L}\\p{N}_])+|[^\\s]`, 'gu');

export function words(text: string): string[] {
  return text.match(token) ?? [];
}

function ngrams(tokens: string[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const key = tokens.slice(i, i + n).join('\u0000');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

function overlap(a: Map<string, number>, b: Map<string, number>): number {
  let n = 0;
  for (const [k, v] of a) n += Math.min(v, b.get(k) ?? 0);
  return n;
}

/** Sentence BLEU-4 over characters with NLTK's smoothing method 3 (zero precisions become 1 / (2^k · denominator)). */
export function bleu4(prediction: string, reference: string): number {
  const hyp = Array.from(prediction),
    ref = Array.from(reference);
  if (!hyp.length || !ref.length) return 0;
  const precisions: [number, number][] = [1, 2, 3, 4].map((n) => {
    const h = ngrams(hyp, n);
    return [overlap(h, ngrams(ref, n)), Math.max(1, hyp.length - n + 1)];
  });
  if (precisions[0][0] === 0) return 0;
  let k = 1,
    logSum = 0;
  for (const [num, den] of precisions) logSum += 0.25 * Math.log(num === 0 ? 1 / (2 ** k++ * den) : num / den);
  const brevity = hyp.length > ref.length ? 1 : Math.exp(1 - ref.length / hyp.length);
  return 100 * brevity * Math.exp(logSum);
}

function rougeN(hyp: string[], ref: string[], n: number): number {
  const h = ngrams(hyp, n),
    r = ngrams(ref, n);
  const hc = Math.max(0, hyp.length - n + 1),
    rc = Math.max(0, ref.length - n + 1);
  if (!hc || !rc) return 0;
  const o = overlap(h, r);
  const p = o / hc,
    rec = o / rc;
  return 2 * ((p * rec) / (p + rec + 1e-8));
}

function lcs(a: string[], b: string[]): number {
  let prev = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    const row = new Array<number>(b.length + 1).fill(0);
    for (let j = 1; j <= b.length; j++)
      row[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], row[j - 1]);
    prev = row;
  }
  return prev[b.length];
}

/** ROUGE-L F as the rouge package computes it (beta = precision / recall). */
function rougeL(hyp: string[], ref: string[]): number {
  const l = lcs(hyp, ref);
  const r = l / ref.length,
    p = l / hyp.length;
  const beta = p / (r + 1e-12);
  return ((1 + beta ** 2) * r * p) / (r + beta ** 2 * p + 1e-12);
}

export interface Similarity {
  'bleu-4': number;
  'rouge-1': number;
  'rouge-2': number;
  'rouge-l': number;
}

export function similarity(prediction: string, reference: string): Similarity {
  const hyp = words(prediction),
    ref = words(reference);
  const rouge =
    hyp.length && ref.length
      ? {
          'rouge-1': 100 * rougeN(hyp, ref, 1),
          'rouge-2': 100 * rougeN(hyp, ref, 2),
          'rouge-l': 100 * rougeL(hyp, ref),
        }
      : { 'rouge-1': 0, 'rouge-2': 0, 'rouge-l': 0 };
  return { 'bleu-4': bleu4(prediction, reference), ...rouge };
}
