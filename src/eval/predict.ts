/**
 * Prediction (do_predict with predict_with_generate): the model answers the last user turn of every
 * example of eval_dataset; generated_predictions.jsonl gets {prompt, predict, label} per example and
 * predict_results.json the mean BLEU-4 and ROUGE-1/2/L, as LLaMA-Factory writes them.
 */
import path from 'node:path';
import type { TrainConfig } from '../config/schema.js';
import { preparePredictData } from '../data/pipeline.js';
import { IGNORE, type Encoded } from '../data/processors/common.js';
import { LmfError } from '../errors.js';
import { writeTextAtomic } from '../io/atomic.js';
import { generate } from '../infer/generate.js';
import { configSettings, loadFromConfig } from '../infer/load.js';
import { stopIdsOf } from '../infer/settings.js';
import { similarity, type Similarity } from './similarity.js';
import { ensureDir } from '../io/dirs.js';

/** The prompt (everything before the last answer) and the last answer's tokens. */
export function splitLastAnswer(e: Encoded): { prompt: number[]; answer: number[] } {
  let end = e.labels.length;
  while (end > 0 && e.labels[end - 1] === IGNORE) end--;
  let start = end;
  while (start > 0 && e.labels[start - 1] !== IGNORE) start--;
  return { prompt: e.ids.slice(0, start), answer: e.ids.slice(start, end) };
}

export async function predict(c: TrainConfig, print: (line: string) => void): Promise<Record<string, number>> {
  if (!c.predict_with_generate) {
    throw new LmfError(
      'bad_value',
      'do_predict needs predict_with_generate: true (answers are generated, then scored)',
      { key: 'predict_with_generate' },
    );
  }
  const m = loadFromConfig(c, c.cutoff_len);
  try {
    const { examples } = await preparePredictData(c, m.tokenizer, m.template);
    const settings = configSettings(c, m);
    const { maxNewTokens, ...sampling } = settings;
    const stopIds = stopIdsOf(m, m.generationConfig);
    const items = examples.map(splitLastAnswer).filter((x) => x.prompt.length > 0);
    const lines: string[] = [];
    const sums: Similarity = { 'bleu-4': 0, 'rouge-1': 0, 'rouge-2': 0, 'rouge-l': 0 };
    const start = performance.now();
    const batch = c.per_device_eval_batch_size;
    for (let i = 0; i < items.length; i += batch) {
      const chunk = items.slice(i, i + batch);
      const done = generate(
        m.model,
        m.tokenizer,
        chunk.map((x, k) => ({ prompt: x.prompt, sampling, maxNewTokens, stopIds, seed: c.seed + i + k })),
      );
      chunk.forEach((x, k) => {
        const label = m.tokenizer.decode(x.answer, true);
        const prediction = done[k].text;
        const s = similarity(prediction, label);
        for (const key of Object.keys(sums) as (keyof Similarity)[]) sums[key] += Math.round(s[key] * 1e4) / 1e4;
        lines.push(JSON.stringify({ prompt: m.tokenizer.decode(x.prompt, false), predict: prediction, label }));
      });
      print(`predict: ${Math.min(i + batch, items.length)}/${items.length}`);
    }
    const runtime = (performance.now() - start) / 1000;
    const results: Record<string, number> = {};
    for (const [key, v] of Object.entries(sums))
      results[`predict_${key}`] = Math.round((v / Math.max(1, items.length)) * 1e4) / 1e4;
    results.predict_runtime = Math.round(runtime * 1e4) / 1e4;
    results.predict_samples_per_second = Math.round((items.length / runtime) * 1e3) / 1e3;
    ensureDir(c.output_dir);
    writeTextAtomic(path.join(c.output_dir, 'generated_predictions.jsonl'), lines.map((l) => `${l}\n`).join(''));
    writeTextAtomic(path.join(c.output_dir, 'predict_results.json'), `${JSON.stringify(results, null, 2)}\n`);
    return results;
  } finally {
    m.dispose();
  }
}
