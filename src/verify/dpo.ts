/**
 * DPO against the reference (golden_dpo.safetensors): the policy is base + the adapter, the reference the same
 * base with the adapter switched off. Compares the four summed log-probability vectors (atol), the sigmoid loss
 * (a tenth of atol) and the gradient of every lora_A and lora_B (gradRtol).
 */
import { setLoraEnabled } from '../adapters/lora.js';
import { loadPeftAdapter } from '../adapters/peft.js';
import { LmfError } from '../errors.js';
import type { SafetensorsFile } from '../io/safetensors.js';
import { shiftLabels } from '../models/decoder.js';
import { backward, noGrad } from '../tensor/autograd.js';
import { preferenceLossOp } from '../tensor/ops/index.js';
import { withScope } from '../tensor/tensor.js';
import {
  adapterParameters,
  compare,
  loadVerifiedModel,
  reportOf,
  type TensorReport,
  type VerifyOptions,
  type VerifyReport,
} from './report.js';

export function verifyDpo(o: VerifyOptions, g: SafetensorsFile): VerifyReport {
  if (!o.adapter) {
    throw new LmfError('golden_mismatch', 'DPO golden files are checked with the adapter the policy used', {
      file: o.golden,
      hint: 'pass --adapter (the fixture lora-adapter)',
    });
  }
  const model = loadVerifiedModel(o, true);
  try {
    const layers = loadPeftAdapter(model, o.adapter, o.model);
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
    const reports: TensorReport[] = [];
    const against = (name: string, ours: ArrayLike<number>, tolerance = o.atol) =>
      reports.push(compare(name, ours, g.readNumbers(name), tolerance, 'abs'));
    against('reference_chosen_logps', ref.slice(0, P));
    against('reference_rejected_logps', ref.slice(P));
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
      against('policy_chosen_logps', stats.chosen);
      against('policy_rejected_logps', stats.rejected);
      against('loss', loss.data, o.atol / 10);
      backward(loss);
    });
    for (const [name, t] of adapterParameters(layers)) {
      const key = `grad.${name}`;
      if (g.entries.has(key)) reports.push(compare(key, t.grad!.data, g.readNumbers(key), o.gradRtol, 'rel'));
    }
    return reportOf(o, reports);
  } finally {
    model.dispose();
  }
}
