// A synthetic preference task: for "a+b=" the preferred answer is the sum, the rejected one a wrong number.
// rm and dpo on a tiny LLaMA (full tuning from random weights) must take held-out reward accuracy from chance
// to at least 90%; `lmf score` must rank answers with the trained reward model as the evaluation did.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadInference } from '../../src/infer/load.js';
import { scoreAnswers } from '../../src/infer/score.js';
import { Rng } from '../../src/tensor/random.js';
import { ValueHead } from '../../src/models/value-head.js';
import { makeTinyModelFolder, lmfEntry } from '../helpers.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-sum-'));
test.after(() => rmSync(work, { recursive: true, force: true }));
const modelDir = path.join(work, 'tiny');
const dataDir = path.join(work, 'data');

interface Row {
  instruction: string;
  chosen: string;
  rejected: string;
}

/** 1,400 distinct (a, b, wrong answer) triples over single digits: 1,200 to train on, 200 held out. */
function makeData(): Row[] {
  const rng = new Rng(3);
  const seen = new Set<string>();
  const rows: Row[] = [];
  while (rows.length < 1400) {
    const a = rng.int(10),
      b = rng.int(10);
    let wrong = a + b;
    while (wrong === a + b) wrong = rng.int(19);
    if (seen.has(`${a},${b},${wrong}`)) continue;
    seen.add(`${a},${b},${wrong}`);
    rows.push({ instruction: `${a}+${b}=`, chosen: String(a + b), rejected: String(wrong) });
  }
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(path.join(dataDir, 'train.json'), JSON.stringify(rows.slice(0, 1200)));
  writeFileSync(path.join(dataDir, 'heldout.json'), JSON.stringify(rows.slice(1200)));
  const columns = {
    formatting: 'alpaca',
    ranking: true,
    columns: { prompt: 'instruction', chosen: 'chosen', rejected: 'rejected' },
  };
  writeFileSync(
    path.join(dataDir, 'dataset_info.json'),
    JSON.stringify({
      sum_train: { file_name: 'train.json', ...columns },
      sum_heldout: { file_name: 'heldout.json', ...columns },
    }),
  );
  return rows.slice(1200);
}

const heldout = makeData();
await makeTinyModelFolder(modelDir);

function train(stage: 'rm' | 'dpo', extra: string): Record<string, number>[] {
  const file = path.join(work, `${stage}.yaml`);
  writeFileSync(
    file,
    `model_name_or_path: ${modelDir}\nstage: ${stage}\ndataset: sum_train\neval_dataset: sum_heldout\n` +
      `dataset_dir: ${dataDir}\ntemplate: empty\ncutoff_len: 32\noutput_dir: ${path.join(work, stage)}\nfinetuning_type: full\n` +
      'per_device_train_batch_size: 16\nper_device_eval_batch_size: 50\nlearning_rate: 1.0e-3\nnum_train_epochs: 6\n' +
      `lr_scheduler_type: cosine\nwarmup_ratio: 0.05\nlogging_steps: 30\neval_steps: 30\neval_on_start: true\nseed: 1\n${extra}`,
  );
  const r = spawnSync(process.execPath, [...lmfEntry(), 'train', file], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return readFileSync(path.join(work, stage, 'trainer_log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

function curve(log: Record<string, number>[], key: string): string {
  return log
    .filter((r) => key in r)
    .map((r) => `${r.current_steps}:${r[key].toFixed(3)}`)
    .join(' ');
}

test('rm: held-out accuracy rises from chance to >= 90%, and lmf score ranks answers as the evaluation did', (t) => {
  const log = train('rm', '');
  t.diagnostic(`rm eval_accuracy by step: ${curve(log, 'eval_accuracy')}`);
  const acc = log.filter((r) => 'eval_accuracy' in r).map((r) => r.eval_accuracy);
  assert.ok(acc[0] > 0.3 && acc[0] < 0.7, `at the start the ranking is chance: ${acc[0]}`);
  assert.ok(acc[acc.length - 1] >= 0.9, `final held-out accuracy ${acc[acc.length - 1]}`);

  const out = path.join(work, 'rm');
  const m = loadInference({ model: out, template: 'empty' });
  const head = ValueHead.load(out);
  let correct = 0;
  for (const row of heldout) {
    const [chosen, rejected] = scoreAnswers(
      m,
      head,
      [{ role: 'user', content: row.instruction }],
      [row.chosen, row.rejected],
    );
    if (chosen > rejected) correct++;
  }
  m.dispose();
  head.dispose();
  assert.equal(
    correct / heldout.length,
    acc[acc.length - 1],
    'scoring one pair at a time agrees with the batched evaluation',
  );

  const cli = spawnSync(
    process.execPath,
    [...lmfEntry(), 'score', '--model', out, '--template', 'empty', '--prompt', '3+4=', '7', '16'],
    { encoding: 'utf8' },
  );
  assert.equal(cli.status, 0, cli.stderr);
  const [right, wrong] = cli.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { answer: string; score: number });
  assert.deepEqual([right.answer, wrong.answer], ['7', '16']);
  assert.ok(right.score > wrong.score, `3+4=7 scores ${right.score}, 3+4=16 scores ${wrong.score}`);
});

test('dpo: held-out reward accuracy rises to >= 90% against the frozen reference', (t) => {
  const log = train('dpo', 'pref_beta: 0.1\n');
  t.diagnostic(`dpo eval_rewards/accuracies by step: ${curve(log, 'eval_rewards/accuracies')}`);
  t.diagnostic(`dpo eval_rewards/margins by step: ${curve(log, 'eval_rewards/margins')}`);
  const acc = log.filter((r) => 'eval_rewards/accuracies' in r);
  // at the start the policy is the reference: every implicit reward is 0, so no pair is ranked (accuracy 0)
  assert.equal(acc[0]['eval_rewards/accuracies'], 0);
  assert.equal(acc[0]['eval_rewards/margins'], 0);
  assert.ok(
    acc[acc.length - 1]['eval_rewards/accuracies'] >= 0.9,
    `final ${acc[acc.length - 1]['eval_rewards/accuracies']}`,
  );
  assert.ok(acc[acc.length - 1]['eval_rewards/margins'] > 0);
});
