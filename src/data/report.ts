/**
 * Human-readable views of prepared data: a rendered example with the trained tokens marked, and the
 * summary `lmf data check` prints (rows kept and dropped, length histogram, truncation, problems).
 */
import type { TextTokenizer } from './tokenizer.js';
import type { Encoded } from './processors/common.js';
import type { PreparedData, ProcessedSet } from './pipeline.js';
import { maxOf } from '../util/arrays.js';

/** The example's text with trained spans wrapped in ⟦ ⟧ (or colour on a terminal). */
export function markTrained(tok: TextTokenizer, e: Encoded, color: boolean): string {
  const open = color ? '\x1b[32m' : '⟦',
    close = color ? '\x1b[0m' : '⟧';
  let out = '';
  let i = 0;
  while (i < e.ids.length) {
    const trained = e.labels[i] >= 0;
    let j = i;
    while (j < e.ids.length && e.labels[j] >= 0 === trained) j++;
    const text = tok.decode(e.ids.slice(i, j));
    out += trained ? open + text + close : text;
    i = j;
  }
  return out;
}

/** Encoded examples of a processed set, as preview shows them (both answers of a pair). */
export function previewExamples(set: ProcessedSet, n: number): { label: string; example: Encoded }[] {
  if (set.kind === 'pairwise') {
    return set.pairs.slice(0, n).flatMap((p, i) => [
      { label: `#${i + 1} chosen`, example: p.chosen },
      { label: `#${i + 1} rejected`, example: p.rejected },
    ]);
  }
  if (set.kind === 'kto')
    return set.examples
      .slice(0, n)
      .map((e, i) => ({ label: `#${i + 1} ${e.desirable ? 'desirable' : 'undesirable'}`, example: e.example }));
  return set.examples.slice(0, n).map((e, i) => ({ label: `#${i + 1}`, example: e }));
}

export function histogram(lengths: number[], buckets = 8): string[] {
  if (!lengths.length) return [];
  const max = maxOf(lengths);
  const width = Math.max(1, Math.ceil((max + 1) / buckets));
  const counts = new Array<number>(buckets).fill(0);
  for (const l of lengths) counts[Math.min(buckets - 1, Math.floor(l / width))]++;
  const top = maxOf(counts);
  return counts.map(
    (c, b) =>
      `${String(b * width).padStart(6)}-${String((b + 1) * width - 1).padEnd(6)} ${'#'.repeat(Math.round((c / top) * 40)).padEnd(40)} ${c}`,
  );
}

export function checkSummary(d: PreparedData): string[] {
  const s = d.stats;
  const lines = [
    `rows read: ${s.rowsRead}`,
    `examples kept: ${s.examples}${s.rowsDropped ? `, rows dropped: ${s.rowsDropped}` : ''}`,
    `truncated to cutoff_len: ${s.truncated}`,
    `tokens: ${s.lengths.reduce((a, b) => a + b, 0)} (mean ${(s.lengths.reduce((a, b) => a + b, 0) / Math.max(1, s.lengths.length)).toFixed(1)}, max ${maxOf(s.lengths, 0)})`,
    'length histogram:',
    ...histogram(s.lengths),
  ];
  if (d.eval)
    lines.splice(
      2,
      0,
      `evaluation examples: ${d.eval.kind === 'pairwise' ? d.eval.pairs.length : d.eval.examples.length}`,
    );
  return lines;
}
