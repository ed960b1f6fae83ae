import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { attachLora, mergeLora, savedModuleParameters } from '../../src/adapters/lora.js';
import { loadPeftAdapter, readAdapterConfig, savePeftAdapter, settingsFromConfig } from '../../src/adapters/peft.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { shiftLabels, tokenWeights } from '../../src/models/decoder.js';
import { loadModel } from '../../src/models/registry.js';
import { backward, noGrad } from '../../src/tensor/autograd.js';
import { Rng } from '../../src/tensor/random.js';
import { withScope } from '../../src/tensor/tensor.js';
import { maxAbs, maxAbsDiff, tinyDir } from '../helpers.js';

const adapterDir = path.join(tinyDir, 'lora-adapter');

test('base + the fixture PEFT adapter: logits, loss and every LoRA gradient match PyTorch', () => {
  const golden = SafetensorsFile.open(path.join(tinyDir, 'golden_lora.safetensors'));
  const { model } = loadModel(path.join(tinyDir, 'model'));
  const layers = loadPeftAdapter(model, adapterDir);
  assert.equal(layers.size, 4);
  const input = { ids: Int32Array.from(golden.readNumbers('input_ids')), batch: 2, seq: 16 };
  withScope(() => {
    assert.ok(maxAbsDiff(model.logits(input).data, golden.readNumbers('logits')) < 1e-4);
    const targets = shiftLabels(golden.readNumbers('labels'), 2, 16);
    const loss = model.loss(input, targets, tokenWeights(targets));
    assert.ok(Math.abs(loss.data[0] - golden.readNumbers('loss')[0]) < 1e-4);
    backward(loss);
  });
  for (const [name, layer] of layers) {
    for (const [part, t] of [
      ['lora_A', layer.A],
      ['lora_B', layer.B],
    ] as const) {
      const want = golden.readNumbers(`grad.base_model.model.${name}.${part}.weight`);
      const err = maxAbsDiff(t.grad!.data, want) / (maxAbs(want) + 1e-8);
      assert.ok(err < 1e-3, `${name}.${part}: relative error ${err}`);
    }
  }
  for (const [, p] of model.namedParameters()) assert.equal(p.grad, null, 'the base model must stay frozen');
  model.dispose();
  golden.close();
});

test('a saved adapter has PEFT names and config, and loads back to the same outputs', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lmf-peft-'));
  try {
    const { model } = loadModel(path.join(tinyDir, 'model'));
    const settings = { r: 8, alpha: 16, dropout: 0, targetModules: 'all', useRslora: true };
    const layers = attachLora(model, settings, new Rng(5));
    assert.equal(layers.size, 2 * 7);
    for (const l of layers.values())
      l.B.data.forEach((_, i, b) => {
        b[i] = 0.01 * ((i % 7) - 3);
      });
    savePeftAdapter(dir, layers, settings, '../model');
    const cfg = JSON.parse(readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.peft_type, 'LORA');
    assert.deepEqual(cfg.target_modules, ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    assert.equal(cfg.use_rslora, true);
    const st = SafetensorsFile.open(path.join(dir, 'adapter_model.safetensors'));
    assert.ok(st.entries.has('base_model.model.model.layers.1.mlp.down_proj.lora_B.weight'));
    assert.deepEqual(st.entries.get('base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight')!.shape, [8, 64]);
    st.close();
    const input = { ids: Int32Array.from({ length: 12 }, (_, i) => (i * 37) % 256), batch: 1, seq: 12 };
    const before = noGrad(() => withScope(() => model.logits(input).toArray()));
    const { model: again } = loadModel(path.join(tinyDir, 'model'));
    const loaded = loadPeftAdapter(again, dir);
    assert.equal(loaded.size, 14);
    assert.equal([...loaded.values()][0].scale, 16 / Math.sqrt(8));
    const after = noGrad(() => withScope(() => again.logits(input).toArray()));
    assert.ok(maxAbsDiff(before, after) === 0);
    assert.deepEqual(settingsFromConfig(readAdapterConfig(dir)).targetModules, cfg.target_modules);
    model.dispose();
    again.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('merging an adapter into the base gives the logits of base + adapter', () => {
  const input = { ids: Int32Array.from({ length: 16 }, (_, i) => (i * 29) % 256), batch: 1, seq: 16 };
  for (const dtype of ['f32', 'bf16'] as const) {
    const { model } = loadModel(path.join(tinyDir, 'model'), { dtype });
    const layers = loadPeftAdapter(model, adapterDir);
    const withAdapter = noGrad(() => withScope(() => model.logits(input).toArray()));
    mergeLora(model, layers);
    assert.ok(model.layers.every((l) => l.projections().every(([, lin]) => lin.delta === null)));
    const merged = noGrad(() => withScope(() => model.logits(input).toArray()));
    // f32 merges exactly up to rounding; bf16 storage rounds the merged weights to bf16
    assert.ok(
      maxAbsDiff(withAdapter, merged) < (dtype === 'f32' ? 1e-5 : 5e-2),
      `${dtype}: ${maxAbsDiff(withAdapter, merged)}`,
    );
    model.dispose();
  }
});

// DoRA treats the row norm of the adapted weight as a constant in the backward pass (the paper's section 4.3,
// as PEFT does), so only the magnitude's gradient is the exact derivative: that one is finite-differenced.
test('DoRA: starts at the base model, magnitude gradient agrees with finite differences, saves, loads and merges exactly', () => {
  const input = { ids: Int32Array.from({ length: 12 }, (_, i) => (i * 41) % 256), batch: 1, seq: 12 };
  const { model } = loadModel(path.join(tinyDir, 'model'));
  const base = noGrad(() => withScope(() => model.logits(input).toArray()));
  const settings = {
    r: 4,
    alpha: 8,
    dropout: 0,
    targetModules: ['q_proj', 'down_proj'],
    useRslora: false,
    useDora: true,
  };
  const layers = attachLora(model, settings, new Rng(3));
  assert.ok(
    maxAbsDiff(
      base,
      noGrad(() => withScope(() => model.logits(input).toArray())),
    ) < 1e-5,
    'B = 0 and m = ||W|| leave the model unchanged',
  );
  const rng = new Rng(9);
  for (const l of layers.values()) {
    l.B.data.forEach((_, i, b) => {
      b[i] = rng.normal() * 0.05;
    });
    l.magnitude!.data.forEach((v, i, m) => {
      m[i] = v * (1 + 0.1 * rng.normal());
    });
  }
  const targets = shiftLabels(input.ids, 1, 12);
  const lossOf = () => noGrad(() => withScope(() => model.loss(input, targets, tokenWeights(targets)).data[0]));
  withScope(() => backward(model.loss(input, targets, tokenWeights(targets))));
  for (const l of [...layers.values()].slice(0, 2)) {
    for (const t of [l.magnitude!]) {
      const dir = Float32Array.from({ length: t.size }, () => rng.normal());
      const norm = Math.sqrt(dir.reduce((a, v) => a + v * v, 0));
      const orig = Float32Array.from(t.data);
      const at = (e: number) => {
        t.data.set(orig.map((v, i) => v + (e * dir[i]) / norm));
        return lossOf();
      };
      const numeric = (at(1e-2) - at(-1e-2)) / 2e-2;
      t.data.set(orig);
      const analytic = t.grad!.data.reduce((a, g, i) => a + (g * dir[i]) / norm, 0);
      assert.ok(
        Math.abs(numeric - analytic) <= 2e-2 * Math.abs(analytic) + 2e-4,
        `finite difference ${numeric}, gradient ${analytic}`,
      );
    }
  }
  const adapted = noGrad(() => withScope(() => model.logits(input).toArray()));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lmf-dora-'));
  savePeftAdapter(dir, layers, settings, '../model');
  assert.equal(JSON.parse(readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')).use_dora, true);
  const st = SafetensorsFile.open(path.join(dir, 'adapter_model.safetensors'));
  assert.deepEqual(st.entries.get('base_model.model.model.layers.0.mlp.down_proj.lora_magnitude_vector')!.shape, [64]);
  st.close();
  const { model: again } = loadModel(path.join(tinyDir, 'model'));
  const loaded = loadPeftAdapter(again, dir);
  assert.equal(
    maxAbsDiff(
      adapted,
      noGrad(() => withScope(() => again.logits(input).toArray())),
    ),
    0,
  );
  mergeLora(again, loaded);
  assert.ok(
    maxAbsDiff(
      adapted,
      noGrad(() => withScope(() => again.logits(input).toArray())),
    ) < 1e-4,
    'merged DoRA',
  );
  rmSync(dir, { recursive: true, force: true });
  model.dispose();
  again.dispose();
});

test('modules_to_save (additional_target) are saved whole beside the adapter and loaded back', () => {
  const input = { ids: Int32Array.from({ length: 10 }, (_, i) => (i * 13) % 256), batch: 1, seq: 10 };
  const { model } = loadModel(path.join(tinyDir, 'model'));
  const settings = {
    r: 2,
    alpha: 4,
    dropout: 0,
    targetModules: ['v_proj'],
    useRslora: false,
    modulesToSave: ['lm_head'],
  };
  const layers = attachLora(model, settings, new Rng(1));
  model.lmHead!.data.forEach((v, i, a) => {
    (a as Float32Array)[i] = v * 1.5;
  });
  const changed = noGrad(() => withScope(() => model.logits(input).toArray()));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lmf-mts-'));
  savePeftAdapter(dir, layers, settings, '../model', savedModuleParameters(model, ['lm_head']));
  assert.deepEqual(JSON.parse(readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')).modules_to_save, [
    'lm_head',
  ]);
  const { model: again } = loadModel(path.join(tinyDir, 'model'));
  loadPeftAdapter(again, dir);
  assert.equal(
    maxAbsDiff(
      changed,
      noGrad(() => withScope(() => again.logits(input).toArray())),
    ),
    0,
  );
  rmSync(dir, { recursive: true, force: true });
  model.dispose();
  again.dispose();
});
