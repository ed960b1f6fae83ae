// Config errors name the key, its line, the value and the closest valid option; LLaMA-Factory spellings load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, parseOverrides } from '../../src/config/load.js';
import { LmfError } from '../../src/errors.js';

function file(text: string): string {
  const f = path.join(mkdtempSync(path.join(os.tmpdir(), 'lmf-conf-')), 'c.yaml');
  writeFileSync(f, text);
  return f;
}

function fails(
  text: string,
  code: string,
  pattern: RegExp,
  line?: number,
  overrides: Record<string, unknown> = {},
): void {
  try {
    loadConfig(file(text), overrides);
  } catch (e) {
    assert.ok(e instanceof LmfError);
    assert.equal(e.code, code);
    assert.match(`${e.message} | ${e.context.hint ?? ''}`, pattern);
    if (line !== undefined) assert.equal(e.context.row, line);
    return;
  }
  assert.fail('no error');
}

test('a LLaMA-Factory YAML loads with its spellings (1e-4 as text, comma lists)', () => {
  const c = loadConfig(
    file(
      'model_name_or_path: m\nstage: sft\nfinetuning_type: lora\nlora_target: q_proj,v_proj\ndataset: a,b\n' +
        'learning_rate: 1.0e-4\nnum_train_epochs: 3.0\nbf16: true\nddp_timeout: 180000000\nreport_to: none\n',
    ),
  );
  assert.deepEqual(c.lora_target, ['q_proj', 'v_proj']);
  assert.deepEqual(c.dataset, ['a', 'b']);
  assert.equal(c.learning_rate, 1e-4);
  assert.equal(loadConfig(file('model_name_or_path: m\nlearning_rate: "2e-5"\n')).learning_rate, 2e-5);
});

test('unknown and misspelt keys are named with their line and the closest key', () => {
  fails(
    'model_name_or_path: m\nstage: sft\nlearning_rat: 1e-4\n',
    'unknown_key',
    /unknown key "learning_rat" \| did you mean "learning_rate"/,
    3,
  );
  fails('model_name_or_path: m\nzzz_unheard_of: 1\n', 'unknown_key', /unknown key "zzz_unheard_of"/);
});

test('bad types and bad values say what is valid', () => {
  fails('model_name_or_path: m\nstage: sfft\n', 'bad_value', /stage: "sfft" is not valid.*did you mean "sft"\?/, 2);
  fails('model_name_or_path: m\nlora_rank: eight\n', 'bad_value', /lora_rank: "eight" is not valid/);
  fails('model_name_or_path: m\nlearning_rate: -1\n', 'bad_value', /learning_rate: -1 is not valid/);
  fails('stage: sft\n', 'bad_value', /model_name_or_path: is required/);
  fails('model_name_or_path: m\nstage: [sft\n', 'bad_yaml', /invalid YAML at line/);
});

test('command-line overrides are YAML values and win over the file', () => {
  const o = parseOverrides(['learning_rate=3e-4', 'lora_target=all', 'bf16=true']);
  const c = loadConfig(file('model_name_or_path: m\nlearning_rate: 1e-5\n'), o);
  assert.equal(c.learning_rate, 3e-4);
  assert.equal(c.bf16, true);
  assert.throws(() => parseOverrides(['learning_rate']), /not key=value/);
  fails('model_name_or_path: m\n', 'unknown_key', /did you mean "max_steps"/, undefined, { max_step: 3 });
});
