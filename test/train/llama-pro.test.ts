// LLaMA Pro: `lmf expand` adds zero-output copies of blocks; the expanded model gives the original's logits
// before training, and use_llama_pro trains only the added blocks (freeze), or puts LoRA only on them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseOverrides } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { expandedLayerIds } from '../../src/models/expand.js';
import { loadModel } from '../../src/models/registry.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { withScope } from '../../src/tensor/tensor.js';
import { setupMethod } from '../../src/train/methods.js';
import { makeTinyModelFolder, maxAbsDiff, lmfEntry } from '../helpers.js';

test('lmf expand keeps the logits; use_llama_pro trains the added blocks only', async () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-llama-pro-'));
  const base = await makeTinyModelFolder(path.join(work, 'base'), { num_hidden_layers: 4 }, 3);
  const out = path.join(work, 'expanded');
  const r = spawnSync(process.execPath, [...lmfEntry(), 'expand', '--model', base, '--out', out, '--num-expand', '2'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /expanded 4 → 6 layers/);
  const ids = Int32Array.from({ length: 12 }, (_, i) => 5 + i * 11);
  const logits = (dir: string) => {
    const { model } = loadModel(dir);
    const z = noGrad(() => withScope(() => model.logits({ ids, batch: 1, seq: 12 }).toArray()));
    model.dispose();
    return z;
  };
  assert.ok(maxAbsDiff(logits(out), logits(base)) < 1e-6);
  assert.deepEqual(expandedLayerIds(6, 2), [2, 5]);

  const { model } = loadModel(out);
  const freeze = setupMethod(
    model,
    configSchema.parse({
      model_name_or_path: out,
      ...parseOverrides(['finetuning_type=freeze', 'use_llama_pro=true', 'freeze_trainable_layers=2']),
    }),
  );
  const layersTrained = new Set(freeze.trainable.map(([n]) => Number(/^model\.layers\.(\d+)\./.exec(n)?.[1])));
  assert.deepEqual([...layersTrained].sort(), [2, 5]);
  const lora = setupMethod(
    model,
    configSchema.parse({
      model_name_or_path: out,
      ...parseOverrides(['finetuning_type=lora', 'use_llama_pro=true', 'freeze_trainable_layers=2']),
    }),
  );
  const loraLayers = new Set([...lora.lora!.layers.keys()].map((n) => Number(/^model\.layers\.(\d+)\./.exec(n)?.[1])));
  assert.deepEqual([...loraLayers].sort(), [2, 5]);
  assert.equal(lora.lora!.layers.size, 2 * 7);
  model.dispose();
});
