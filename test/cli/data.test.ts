// `lmf data preview` and `lmf data check` on the shipped demo datasets with a real tokenizer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { lenmlTokenizerDir, lmf } from '../helpers.js';

function config(body: string): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'lmf-cfg-')), 'c.yaml');
  writeFileSync(file, `model_name_or_path: ${lenmlTokenizerDir('qwen3')}\ndataset_dir: data\n${body}`);
  return file;
}

test('data preview marks the trained tokens', () => {
  const r = lmf('data', 'preview', config('dataset: identity\ntemplate: qwen3_nothink\ncutoff_len: 128\n'), '--n', '2');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /── #1: \d+ tokens, \d+ trained ──/);
  assert.match(
    r.stdout,
    /<\|im_start\|>assistant\n⟦I am \{\{name\}\}, an assistant trained by \{\{author\}\} with LMFactory\.<\|im_end\|>\n⟧/,
  );
  const dpo = lmf('data', 'preview', config('dataset: dpo_demo\nstage: dpo\ntemplate: qwen\n'), '--n', '1');
  assert.match(dpo.stdout, /#1 chosen[\s\S]*⟦7 \+ 5 = 12\.<\|im_end\|>\n⟧[\s\S]*#1 rejected[\s\S]*⟦7 \+ 5 = 13\./);
});

test('data check summarises and lists each problem as file:row, exiting 1', () => {
  const ok = lmf('data', 'check', config('dataset: identity,sharegpt_demo\ntemplate: qwen\n'));
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /rows read: 8\nexamples kept: 8/);
  assert.match(ok.stdout, /length histogram:/);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lmf-bad-'));
  writeFileSync(path.join(dir, 'dataset_info.json'), JSON.stringify({ d: { file_name: 'd.json' } }));
  writeFileSync(
    path.join(dir, 'd.json'),
    JSON.stringify([
      { instruction: 'a', output: 'b' },
      { instruction: 'c', output: '' },
    ]),
  );
  const bad = lmf('data', 'check', config(`dataset: d\ntemplate: qwen\n`), `dataset_dir=${dir}`);
  assert.equal(bad.status, 1);
  assert.match(bad.stdout, /d\.json:2: empty response/);
  const typo = lmf('data', 'check', config('dataset: identity\ncutof_len: 10\n'));
  assert.equal(typo.status, 1);
  assert.match(typo.stderr, /unknown key "cutof_len"[\s\S]*did you mean "cutoff_len"/);
});
