// DPO (sigmoid, beta 0.1) against PyTorch: policy = base + the fixture LoRA adapter, reference = the same base
// with the adapter switched off (no second copy of the model).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { setLoraEnabled } from '../../src/adapters/lora.js';
import { loadPeftAdapter } from '../../src/adapters/peft.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { shiftLabels } from '../../src/models/decoder.js';
import { loadModel } from '../../src/models/registry.js';
import { backward, noGrad } from '../../src/tensor/autograd.js';
import { withScope } from '../../src/tensor/tensor.js';
import { preferenceLossOp } from '../../src/tensor/ops/preference-loss.js';
import { goldenFixtureDirs, maxAbs, maxAbsDiff } from '../helpers.js';

for (const dir of goldenFixtureDirs) {
  test(`${path.basename(dir)}: DPO sigmoid loss, the four log-probability vectors and every LoRA gradient match PyTorch`, () => {
    const g = SafetensorsFile.open(path.join(dir, 'golden_dpo.safetensors'));
    const { model } = loadModel(path.join(dir, 'model'));
    const layers = loadPeftAdapter(model, path.join(dir, 'lora-adapter'));
    const [P, T] = g.entries.get('chosen_ids')!.shape;
    const ids = Int32Array.from([...g.readNumbers('chosen_ids'), ...g.readNumbers('rejected_ids')]);
    const targets = shiftLabels([...g.readNumbers('chosen_labels'), ...g.readNumbers('rejected_labels')], 2 * P, T);
    const input = { ids, batch: 2 * P, seq: T };
    const sums = (logp: Float32Array) =>
      Array.from({ length: 2 * P }, (_, r) => {
        let s = 0;
        for (let t = 0; t < T; t++) if (targets[r * T + t] >= 0) s += logp[r * T + t];
        return s;
      });
    setLoraEnabled(layers, false);
    const ref = noGrad(() => withScope(() => sums(model.tokenLogProbs(input, targets).data)));
    setLoraEnabled(layers, true);
    const close = (ours: number[], name: string) =>
      assert.ok(maxAbsDiff(ours, g.readNumbers(name)) < 1e-4, `${name}: ${ours} vs ${[...g.readNumbers(name)]}`);
    close(ref.slice(0, P), 'reference_chosen_logps');
    close(ref.slice(P), 'reference_rejected_logps');
    withScope(() => {
      const logp = model.tokenLogProbs(input, targets);
      const { loss, stats } = preferenceLossOp(
        logp,
        {
          targets,
          pairs: P,
          seq: T,
          refChosen: Float64Array.from(ref.slice(0, P)),
          refRejected: Float64Array.from(ref.slice(P)),
        },
        { loss: 'sigmoid', beta: g.readNumbers('beta')[0], labelSmoothing: 0, simpoGamma: 0.5, ftx: 0 },
      );
      close(stats.chosen, 'policy_chosen_logps');
      close(stats.rejected, 'policy_rejected_logps');
      assert.ok(Math.abs(loss.data[0] - g.readNumbers('loss')[0]) < 1e-5, `loss ${loss.data[0]}`);
      backward(loss);
    });
    for (const [name, l] of layers) {
      for (const [part, t] of [
        ['lora_A', l.A],
        ['lora_B', l.B],
      ] as const) {
        const want = g.readNumbers(`grad.base_model.model.${name}.${part}.weight`);
        const err = maxAbsDiff(t.grad!.data, want) / (maxAbs(want) + 1e-12);
        assert.ok(err < 1e-3, `${name}.${part}: ${err}`);
      }
    }
    model.dispose();
    g.close();
  });
}
