/** `lmf eval CONFIG`: load the model and the task, score it, write results.json and results.log to save_dir. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { TrainConfig } from '../config/schema.js';
import { LmfError } from '../errors.js';
import { writeTextAtomic } from '../io/atomic.js';
import { loadFromConfig } from '../infer/load.js';
import { evaluateChoices, loadTask, scoreLines, type ChoiceReport } from './choice.js';
import { ensureDir } from '../io/dirs.js';
import { writeManifest } from '../io/manifest.js';

export function runChoiceEval(c: TrainConfig, print: (line: string) => void): ChoiceReport {
  if (!c.task)
    throw new LmfError('missing_key', 'eval needs task: <benchmark>_<split>', {
      key: 'task',
      hint: 'for example task: mmlu_test',
    });
  // as LLaMA-Factory: never write over an earlier evaluation
  if (c.save_dir && existsSync(c.save_dir))
    throw new LmfError('output_exists', 'save_dir already exists', {
      key: 'save_dir',
      file: c.save_dir,
      hint: 'choose a new save_dir',
    });
  const subjects = loadTask(c.task_dir, c.task);
  const m = loadFromConfig(c);
  try {
    const report = evaluateChoices(m, subjects, {
      nShot: c.n_shot,
      lang: c.lang,
      seed: c.seed,
      batchSize: c.batch_size,
      onSubject: (key, done, total) => print(`eval: ${key} (${done}/${total})`),
    });
    if (c.save_dir) {
      ensureDir(c.save_dir);
      writeTextAtomic(path.join(c.save_dir, 'results.json'), `${JSON.stringify(report, null, 2)}\n`);
      writeTextAtomic(path.join(c.save_dir, 'results.log'), `${scoreLines(report.scores)}\n`);
      writeManifest(c.save_dir, 'eval', c);
    }
    return report;
  } finally {
    m.dispose();
  }
}
