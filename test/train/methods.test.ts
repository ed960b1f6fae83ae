// Which parameters train, with which learning rate and weight decay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { configSchema } from '../../src/config/schema.js';
import { LmfError } from '../../src/errors.js';
import { loadModel } from '../../src/models/registry.js';
import { setupMethod } from '../../src/train/methods.js';
import { lrFactor } from '../../src/train/scheduler.js';
import { tinyDir } from '../helpers.js';

const cfg = (extra: Record<string, unknown>) =>
  configSchema.parse({ model_name_or_path: 'm', learning_rate: 1e-3, weight_decay: 0.1, ...extra });

test('LoRA+: B matrices get lr x loraplus_lr_ratio; weight decay on matrices only', () => {
  const { model } = loadModel(path.join(tinyDir, 'model'));
  const s = setupMethod(model, cfg({ finetuning_type: 'lora', lora_target: 'q_proj', loraplus_lr_ratio: 16 }));
  assert.equal(s.trainable.length, 4);
  const lrs = s.groups.map((g) => [g.lr, g.params.length, g.weightDecay]);
  assert.deepEqual(lrs.sort(), [
    [0.001, 2, 0.1],
    [0.016, 2, 0.1],
  ]);
  model.dispose();
});

test('freeze: the last layer only, chosen modules, extra modules; full: biases and norms without decay', () => {
  const { model } = loadModel(path.join(tinyDir, 'model'));
  const s = setupMethod(
    model,
    cfg({
      finetuning_type: 'freeze',
      freeze_trainable_layers: 1,
      freeze_trainable_modules: 'mlp',
      freeze_extra_modules: 'norm',
    }),
  );
  assert.deepEqual(s.trainable.map(([n]) => n).sort(), [
    'model.layers.1.mlp.down_proj.weight',
    'model.layers.1.mlp.gate_proj.weight',
    'model.layers.1.mlp.up_proj.weight',
    'model.norm.weight',
  ]);
  const full = setupMethod(model, cfg({ finetuning_type: 'full' }));
  const noDecay = full.groups.find((g) => g.weightDecay === 0)!;
  assert.equal(noDecay.params.length, 5, 'four layer norms and the final norm');
  const extra = setupMethod(
    model,
    cfg({ finetuning_type: 'lora', lora_target: 'q_proj', additional_target: 'embed_tokens,lm_head' }),
  );
  assert.deepEqual(
    extra.trainable.map(([n]) => n).filter((n) => !n.includes('lora_')),
    ['model.embed_tokens.weight', 'lm_head.weight'],
  );
  assert.deepEqual(extra.lora!.settings.modulesToSave, ['embed_tokens', 'lm_head']);
  assert.throws(
    () => setupMethod(model, cfg({ finetuning_type: 'lora', additional_target: 'nothing_here' })),
    LmfError,
  );
  model.dispose();
});

test('schedulers follow Hugging Face: warmup, linear, cosine, constant_with_warmup, polynomial', () => {
  assert.equal(lrFactor('linear', 0, 10, 2, 1e-3), 0);
  assert.equal(lrFactor('linear', 1, 10, 2, 1e-3), 0.5);
  assert.equal(lrFactor('linear', 6, 10, 2, 1e-3), 0.5);
  assert.ok(Math.abs(lrFactor('cosine', 6, 10, 2, 1e-3) - 0.5) < 1e-12);
  assert.equal(lrFactor('constant_with_warmup', 5, 10, 2, 1e-3), 1);
  assert.equal(lrFactor('constant', 0, 10, 2, 1e-3), 1);
  assert.ok(Math.abs(lrFactor('polynomial', 10, 10, 0, 1e-3) - 1e-4) < 1e-12, 'ends at lr_end 1e-7 of a 1e-3 rate');
});
