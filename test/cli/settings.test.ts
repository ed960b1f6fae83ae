// Settings on the command line, LLaMA-Factory's way: a YAML file or none, then key=value and --key value in
// any order (bare flags are true, --flag false works), later ones winning; the same for every command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, parseSettings } from '../../src/config/load.js';
import { splitConfigArgs } from '../../src/cli/config.js';
import { lenmlTokenizerDir, makeTinyModelFolder, lmf } from '../helpers.js';

test('one precedence rule: the file, then the command line left to right; bare flags are true', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lmf-settings-'));
  const file = path.join(dir, 'c.yaml');
  writeFileSync(file, 'model_name_or_path: m\nlearning_rate: 1\nplot_loss: true\n');
  const args = [
    file,
    'learning_rate=2',
    '--learning_rate',
    '3',
    '--plot_loss',
    'false',
    '--do_train',
    '--lora_target=q_proj,v_proj',
  ];
  const { file: f, settings } = splitConfigArgs(args);
  assert.equal(f, file);
  const c = loadConfig(f, parseSettings(settings));
  assert.equal(c.learning_rate, 3);
  assert.equal(c.plot_loss, false);
  assert.equal(c.do_train, true);
  assert.deepEqual(c.lora_target, ['q_proj', 'v_proj']);
  const none = splitConfigArgs(['--model_name_or_path', 'm', '--num_train_epochs', '3.0']);
  assert.equal(none.file, null);
  assert.equal(loadConfig(null, parseSettings(none.settings)).num_train_epochs, 3);
  assert.throws(() => splitConfigArgs([file, 'oops']), /neither key=value nor --key value/);
  assert.throws(
    () =>
      loadConfig(
        null,
        parseSettings([
          ['model_name_or_path', 'm'],
          ['learning_rat', '1'],
        ]),
      ),
    /unknown key "learning_rat"[\s\S]*/,
  );
});

test("LLaMA-Factory's command-line form trains with no YAML, and data check reads flags too", async () => {
  const check = lmf(
    'data',
    'check',
    '--model_name_or_path',
    lenmlTokenizerDir('qwen3'),
    '--dataset',
    'identity',
    '--dataset_dir',
    'data',
    '--template',
    'qwen',
  );
  assert.equal(check.status, 0, check.stderr);
  assert.match(check.stdout, /examples kept: \d+/);

  const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-flags-'));
  const model = await makeTinyModelFolder(path.join(work, 'model'));
  const out = path.join(work, 'out');
  const r = lmf(
    'train',
    ...['--stage', 'sft', '--do_train', '--model_name_or_path', model, '--dataset', 'identity'],
    ...['--dataset_dir', 'data', '--template', 'default', '--finetuning_type', 'lora'],
    ...['--lora_target', 'q_proj,v_proj', '--output_dir', out, '--per_device_train_batch_size', '4'],
    ...['--gradient_accumulation_steps', '4', '--lr_scheduler_type', 'cosine', '--logging_steps', '10'],
    ...['--save_steps', '1000', '--learning_rate', '5e-5', '--num_train_epochs', '3.0', '--plot_loss', '--fp16'],
    // the last settings win: two logged steps, so that plot_loss has a curve to draw
    ...['--cutoff_len', '64', '--max_steps', '2', '--logging_steps', '1'],
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /fp16: this CPU engine computes half precision as bf16/);
  assert.ok(existsSync(path.join(out, 'adapter_model.safetensors')));
  assert.ok(existsSync(path.join(out, 'training_loss.png')));
});
