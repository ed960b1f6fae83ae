// LLaMA-Factory's text-only example configs (train_lora, train_full, inference, merge_lora, extras/loraplus, pissa,
// llama_pro, nlg_eval), written again as our own files with the same keys (their sections,
// their LLaMA-Factory-only keys such as dataloader_num_workers, save_only_model, deepspeed, ddp_timeout and
// resume_from_checkpoint: null), run two steps each on a tiny model with only model, data, output and length
// changed. They must load and train without edits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { predict } from '../../src/eval/predict.js';
import { exportModel } from '../../src/export/export.js';
import { generate } from '../../src/infer/generate.js';
import { chatRequest, configSettings, loadFromConfig } from '../../src/infer/load.js';
import { train } from '../../src/train/trainer.js';
import { makeTinyModelFolder } from '../helpers.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-lf-examples-'));
const quiet = () => undefined;

/** A pre-training set laid out as LLaMA-Factory's c4_demo (a text column read as the prompt). */
const ptDir = path.join(work, 'pt-data');
mkdirSync(ptDir);
writeFileSync(
  path.join(ptDir, 'dataset_info.json'),
  JSON.stringify({ c4_demo: { file_name: 'c4_demo.jsonl', columns: { prompt: 'text' } } }),
);
writeFileSync(
  path.join(ptDir, 'c4_demo.jsonl'),
  Array.from({ length: 8 }, (_, i) =>
    JSON.stringify({ text: `Paragraph ${i}: rivers run to the sea, year after year.` }),
  ).join('\n'),
);

/** The sections every LLaMA-Factory training example has, with our values. */
function example(method: string, dataset: string, output: string, extra = ''): string {
  return `### model
model_name_or_path: MODEL
trust_remote_code: true

### method
${method}

### dataset
dataset: ${dataset}
template: llama2
cutoff_len: 2048
max_samples: 1000
preprocessing_num_workers: 16
dataloader_num_workers: 4

### output
output_dir: ${output}
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none  # choices: [none, wandb, tensorboard, swanlab, mlflow]

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null
${extra}`;
}

const lora = 'stage: sft\ndo_train: true\nfinetuning_type: lora\nlora_rank: 8\nlora_target: all';
const examples: Record<string, string> = {
  'train_lora sft': example(lora, 'identity,sharegpt_demo', 'OUT'),
  'train_lora sft with deepspeed (one process here)': example(
    `${lora}\ndeepspeed: examples/deepspeed/ds_z3_config.json`,
    'identity',
    'OUT',
  ),
  'train_lora pretrain': example(
    'stage: pt\ndo_train: true\nfinetuning_type: lora\nlora_rank: 8\nlora_target: all',
    'c4_demo',
    'OUT',
  ),
  'train_lora dpo': example(
    'stage: dpo\ndo_train: true\nfinetuning_type: lora\nlora_rank: 8\nlora_target: all\npref_beta: 0.1\npref_loss: sigmoid',
    'dpo_demo',
    'OUT',
  ),
  'train_lora kto': example(
    'stage: kto\ndo_train: true\nfinetuning_type: lora\nlora_rank: 8\nlora_target: all\npref_beta: 0.1',
    'kto_demo',
    'OUT',
  ),
  'train_lora reward': example(
    'stage: rm\ndo_train: true\nfinetuning_type: lora\nlora_rank: 8\nlora_target: all',
    'dpo_demo',
    'OUT',
  ),
  'train_full sft': example('stage: sft\ndo_train: true\nfinetuning_type: full', 'identity', 'OUT'),
  'extras/loraplus': example(`${lora}\nloraplus_lr_ratio: 16.0`, 'identity', 'OUT'),
  'extras/pissa': example(
    `${lora}\npissa_init: true\npissa_iter: 16\npissa_convert: true`,
    'identity',
    'OUT',
    'overwrite_cache: true\n',
  ),
  'extras/llama_pro': example(
    'stage: sft\ndo_train: true\nfinetuning_type: freeze\nfreeze_trainable_layers: 2\nfreeze_trainable_modules: all\nuse_llama_pro: true',
    'identity',
    'OUT',
    'overwrite_cache: true\n',
  ),
};

for (const [name, text] of Object.entries(examples)) {
  test(`LLaMA-Factory example ${name} trains as written (two steps)`, async () => {
    const model = await makeTinyModelFolder(path.join(work, `model-${name.replace(/\W+/g, '-')}`), {
      num_hidden_layers: 4,
    });
    const out = path.join(work, `out-${name.replace(/\W+/g, '-')}`);
    const file = path.join(work, `${name.replace(/\W+/g, '-')}.yaml`);
    writeFileSync(file, text.replace('MODEL', model).replace('OUT', out));
    const dataDir = text.includes('c4_demo') ? ptDir : 'data';
    const c = loadConfig(file, { max_steps: 2, cutoff_len: 96, dataset_dir: dataDir });
    const { state } = await train(c, { print: quiet });
    assert.equal(state.global_step, 2);
    assert.ok(existsSync(path.join(out, 'trainer_log.jsonl')));
    if (name === 'extras/pissa') assert.ok(existsSync(path.join(out, 'pissa_converted', 'adapter_model.safetensors')));
  });
}

test('LLaMA-Factory example train_lora preprocess (tokenized_path) saves the tokenised data, and a later run reads it', async () => {
  const model = await makeTinyModelFolder(path.join(work, 'model-preprocess'));
  const tokenized = path.join(work, 'tokenized', 'sft');
  const file = path.join(work, 'preprocess.yaml');
  writeFileSync(
    file,
    `### model
model_name_or_path: ${model}
trust_remote_code: true

### method
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all

### dataset
dataset: identity
template: llama2
cutoff_len: 2048
max_samples: 1000
preprocessing_num_workers: 16
tokenized_path: ${tokenized}

### output (not used)
output_dir: ${path.join(work, 'out-preprocess')}
overwrite_output_dir: true
`,
  );
  const first = await train(loadConfig(file, { max_steps: 1, cutoff_len: 64 }), { print: quiet });
  assert.equal(first.state.global_step, 1);
  assert.ok(existsSync(path.join(tokenized, 'lmf_tokenized.json.gz')));
  // the datasets are not read again: a name that does not exist changes nothing
  const again = loadConfig(file, { max_steps: 1, cutoff_len: 64, dataset: 'no_such_dataset' });
  assert.equal((await train(again, { print: quiet })).state.global_step, 1);
});

test('LLaMA-Factory examples inference (chat with the LoRA) and merge_lora (export) run as written', async () => {
  const model = await makeTinyModelFolder(path.join(work, 'model-infer'));
  const adapter = path.join(work, 'out-infer-lora');
  const sft = path.join(work, 'infer-sft.yaml');
  writeFileSync(sft, example(lora, 'identity', adapter).replace('MODEL', model));
  await train(loadConfig(sft, { max_steps: 1, cutoff_len: 64 }), { print: quiet });
  const inference = path.join(work, 'inference.yaml');
  writeFileSync(
    inference,
    `model_name_or_path: ${model}
adapter_name_or_path: ${adapter}
template: llama2
infer_backend: huggingface  # choices: [huggingface, vllm, sglang, ktransformers]
trust_remote_code: true
`,
  );
  const c = loadConfig(inference, { max_new_tokens: 3 });
  const m = loadFromConfig(c);
  try {
    const [answer] = generate(m.model, m.tokenizer, [
      chatRequest(m, [{ role: 'user', content: 'Who are you?' }], { settings: configSettings(c, m) }),
    ]);
    assert.ok(answer.ids.length > 0);
  } finally {
    m.dispose();
  }
  const merge = path.join(work, 'merge.yaml');
  const merged = path.join(work, 'merged');
  writeFileSync(
    merge,
    `### Note: DO NOT use quantized model or quantization_bit when merging lora adapters

### model
model_name_or_path: ${model}
adapter_name_or_path: ${adapter}
template: llama2
trust_remote_code: true

### export
export_dir: ${merged}
export_size: 5
export_device: cpu  # choices: [cpu, auto]
export_legacy_format: false
`,
  );
  exportModel(loadConfig(merge, {}));
  assert.ok(existsSync(path.join(merged, 'config.json')));
});

test('LLaMA-Factory example nlg_eval (predict with generate) runs as written', async () => {
  const model = await makeTinyModelFolder(path.join(work, 'model-predict'));
  const out = path.join(work, 'out-predict');
  const file = path.join(work, 'predict.yaml');
  writeFileSync(
    file,
    `### model
model_name_or_path: ${model}
trust_remote_code: true

### method
stage: sft
do_predict: true
finetuning_type: lora

### dataset
eval_dataset: identity
template: llama2
cutoff_len: 2048
max_samples: 50
overwrite_cache: true
preprocessing_num_workers: 16
dataloader_num_workers: 4

### output
output_dir: ${out}
overwrite_output_dir: true
report_to: none

### eval
per_device_eval_batch_size: 1
predict_with_generate: true
ddp_timeout: 180000000
`,
  );
  const c = loadConfig(file, { max_samples: 2, max_new_tokens: 4, dataset_dir: 'data' });
  const metrics = await predict(c, quiet);
  assert.ok(Object.keys(metrics).length > 0);
  assert.ok(existsSync(path.join(out, 'generated_predictions.jsonl')));
});
