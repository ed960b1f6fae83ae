// lmf eval on a multiple-choice set written here, with a model built to always answer "B": the accuracy is
// the share of questions whose answer is B, worked out by hand. And the generation metrics of prediction.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HfTokenizer } from '../../src/data/tokenizer.js';
import { bleu4, similarity, words } from '../../src/eval/similarity.js';
import { parseModelConfig } from '../../src/models/config.js';
import { initModel } from '../../src/models/init.js';
import { saveModelFolder } from '../../src/models/save.js';
import { lenmlTokenizerDir, makeTinyModelFolder, lmf } from '../helpers.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-eval-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Every layer adds nothing (o_proj and down_proj are zero), every embedding is all ones, and only the row of "B" in the head is non-zero. */
function alwaysB(dir: string): void {
  const tokDir = lenmlTokenizerDir('llama2');
  const tok = HfTokenizer.fromDir(tokDir);
  const b = tok.encode('B').at(-1)!;
  const model = initModel(
    parseModelConfig(
      {
        model_type: 'llama',
        vocab_size: 32000,
        hidden_size: 64,
        intermediate_size: 128,
        num_hidden_layers: 1,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        bos_token_id: 1,
        eos_token_id: 2,
        tie_word_embeddings: false,
      },
      dir,
    ),
    'f32',
    1,
  );
  for (const [name, t] of model.namedParameters()) {
    const data = t.data as Float32Array;
    if (name === 'model.embed_tokens.weight' || name.endsWith('norm.weight')) data.fill(1);
    else if (/o_proj|down_proj/.test(name)) data.fill(0);
    else if (name === 'lm_head.weight') {
      data.fill(0);
      data.fill(1, b * 64, (b + 1) * 64);
    }
  }
  saveModelFolder(model, dir, { dtype: 'F32' });
  model.dispose();
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(tokDir, f), path.join(dir, f));
}

function writeTask(root: string): void {
  const task = path.join(root, 'quiz');
  // algebra in MMLU's layout (no header), history in CMMLU's (header, one file per split)
  mkdirSync(path.join(task, 'data', 'dev'), { recursive: true });
  mkdirSync(path.join(task, 'data', 'test'), { recursive: true });
  mkdirSync(path.join(task, 'dev'), { recursive: true });
  mkdirSync(path.join(task, 'test'), { recursive: true });
  writeFileSync(
    path.join(task, 'mapping.json'),
    JSON.stringify({
      algebra: { name: 'algebra', category: 'STEM' },
      history: { name: 'world history', category: 'Humanities' },
    }),
  );
  const row = (q: string, a: string) => `"${q}",one,two,three,four,${a}\n`;
  writeFileSync(path.join(task, 'data', 'dev', 'algebra_dev.csv'), row('1+1?', 'B') + row('2+2?', 'D'));
  writeFileSync(
    path.join(task, 'data', 'test', 'algebra_test.csv'),
    ['B', 'A', 'B', 'C'].map((a, i) => row(`Question ${i}, with a comma?`, a)).join(''),
  );
  const header = ',Question,A,B,C,D,Answer\n';
  const hrow = (i: number, a: string) => `${i},When did event ${i} happen?,1066,1492,1789,1914,${a}\n`;
  writeFileSync(path.join(task, 'dev', 'history.csv'), header + hrow(0, 'A'));
  writeFileSync(
    path.join(task, 'test', 'history.csv'),
    header + ['D', 'B', 'C', 'A', 'B'].map((a, i) => hrow(i + 1, a)).join(''),
  );
}

test('lmf eval: accuracy per subject, category and on average equals the hand count for a model that always answers B', () => {
  const model = path.join(work, 'always-b');
  alwaysB(model);
  writeTask(path.join(work, 'evaluation'));
  const config = path.join(work, 'eval.yaml');
  const saveDir = path.join(work, 'results');
  writeFileSync(
    config,
    `model_name_or_path: ${model}\ntemplate: fewshot\ntask: quiz_test\ntask_dir: ${path.join(work, 'evaluation')}\nn_shot: 2\nlang: en\nbatch_size: 3\nsave_dir: ${saveDir}\n`,
  );
  const r = lmf('eval', config);
  assert.equal(r.status, 0, r.stderr);
  // algebra: B in 2 of 4; history: B in 2 of 5; average 4 of 9
  assert.equal(r.stdout, '     Humanities: 40.00\n           STEM: 50.00\n        Average: 44.44\n');
  const saved = JSON.parse(readFileSync(path.join(saveDir, 'results.json'), 'utf8'));
  assert.deepEqual(saved.subjects.algebra.predictions, ['B', 'B', 'B', 'B']);
  assert.equal(saved.subjects.history.correct, 2);
  assert.equal(readFileSync(path.join(saveDir, 'results.log'), 'utf8'), r.stdout);
  assert.equal(JSON.parse(readFileSync(path.join(saveDir, 'run.json'), 'utf8')).command, 'eval');

  const again = lmf('eval', config);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /save_dir already exists/);
  writeFileSync(
    path.join(work, 'evaluation', 'quiz', 'test', 'history.csv'),
    ',Question,A,B,C,D,Answer\n1,Q?,a,b,c,d,E\n',
  );
  const bad = lmf('eval', config, `save_dir=${path.join(work, 'results2')}`);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /history\.csv.*row 2|row 2.*history\.csv/s);
  assert.match(bad.stderr, /not one of A, B, C, D/);
});

test('BLEU-4 equals NLTK sentence_bleu (characters, smoothing method 3); ROUGE by hand', () => {
  // values printed by NLTK 3.8: sentence_bleu([list(ref)], list(hyp), smoothing_function=SmoothingFunction().method3) * 100
  const cases: [string, string, number][] = [
    ['the cat sat on the mat', 'the cat is on the mat', 78.39204411491599],
    ['今天天气很好', '今天天气不错', 50.813274815461476],
    ['abc', 'abcdefgh', 15.882481735499008],
    ['xyz', 'abc', 0],
    ['hello world', 'hello there world', 52.37080939586991],
  ];
  for (const [hyp, ref, expected] of cases)
    assert.ok(Math.abs(bleu4(hyp, ref) - expected) < 1e-9, `${hyp} / ${ref}: ${bleu4(hyp, ref)}`);
  // unigrams 5 of 6 both ways; bigrams 3 of 5 (the cat, on the, the mat); LCS "the cat on the mat" = 5 of 6
  const s = similarity('the cat sat on the mat', 'the cat is on the mat');
  assert.ok(
    Math.abs(s['rouge-1'] - 500 / 6) < 1e-4 &&
      Math.abs(s['rouge-2'] - 60) < 1e-4 &&
      Math.abs(s['rouge-l'] - 500 / 6) < 1e-4,
    JSON.stringify(s),
  );
  assert.deepEqual(words('天气很好, GPT模型!'), ['天', '气', '很', '好', ',', 'GPT', '模', '型', '!']);
  assert.deepEqual(similarity('', 'x'), { 'bleu-4': 0, 'rouge-1': 0, 'rouge-2': 0, 'rouge-l': 0 });
});

test('do_predict: generated_predictions.jsonl with prompt, predict, label, and the mean scores of its lines', async () => {
  const model = await makeTinyModelFolder(path.join(work, 'tiny'));
  const out = path.join(work, 'predict');
  const config = path.join(work, 'predict.yaml');
  writeFileSync(
    config,
    `model_name_or_path: ${model}\nstage: sft\ndo_predict: true\npredict_with_generate: true\neval_dataset: identity\n` +
      `dataset_dir: data\ntemplate: llama2\nmax_samples: 6\nper_device_eval_batch_size: 4\nmax_new_tokens: 12\noutput_dir: ${out}\n`,
  );
  const r = lmf('train', config);
  assert.equal(r.status, 0, r.stderr);
  const lines = readFileSync(path.join(out, 'generated_predictions.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { prompt: string; predict: string; label: string });
  assert.equal(lines.length, 6);
  const identity = JSON.parse(readFileSync('data/identity.json', 'utf8')) as { instruction: string; output: string }[];
  lines.forEach((l, i) => {
    assert.equal(l.label, identity[i].output);
    assert.ok(l.prompt.includes(identity[i].instruction) && l.prompt.startsWith('<s>'), l.prompt);
  });
  const results = JSON.parse(readFileSync(path.join(out, 'predict_results.json'), 'utf8')) as Record<string, number>;
  for (const key of ['bleu-4', 'rouge-1', 'rouge-2', 'rouge-l'] as const) {
    const mean =
      lines.reduce((a, l) => a + Math.round(similarity(l.predict, l.label)[key] * 1e4) / 1e4, 0) / lines.length;
    assert.ok(Math.abs(results[`predict_${key}`] - mean) < 1e-3, `${key}: ${results[`predict_${key}`]} vs ${mean}`);
  }
  assert.ok(results.predict_samples_per_second > 0);
});
