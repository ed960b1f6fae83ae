/**
 * `lmf verify`: runs the batch stored in a golden file (input_ids, labels) through a model folder (and
 * optionally a PEFT adapter) and compares logits, loss and every gradient with the stored values.
 * This is how a new model family is checked against a reference dump.
 */
import { loadPeftAdapter } from '../adapters/peft.js';
import { LmfError } from '../errors.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { shiftLabels, tokenWeights } from '../models/decoder.js';
import { loadModel } from '../models/registry.js';
import { backward } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';
import { withScope } from '../tensor/tensor.js';

export interface TensorReport {
  name: string;
  max_abs_diff: number;
  /** max |ours - golden| / max |golden| */
  max_rel_diff: number;
  tolerance: number;
  /** which of the two differences the tolerance applies to */
  measure: 'abs' | 'rel';
  ok: boolean;
}

export interface VerifyReport {
  model: string;
  golden: string;
  adapter: string | null;
  ok: boolean;
  tensors: TensorReport[];
}

export interface VerifyOptions {
  model: string;
  golden: string;
  adapter?: string;
  /** absolute tolerance for logits and loss */
  atol: number;
  /** tolerance for gradients, relative to the golden tensor's largest value */
  gradRtol: number;
}

function compare(
  name: string,
  ours: ArrayLike<number>,
  want: Float64Array,
  tolerance: number,
  measure: 'abs' | 'rel',
): TensorReport {
  if (ours.length !== want.length) {
    throw new LmfError('golden_mismatch', `${ours.length} values computed, ${want.length} stored`, { tensor: name });
  }
  let diff = 0,
    scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(ours[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  const rel = diff / (scale + 1e-12);
  const value = measure === 'abs' ? diff : rel;
  return { name, max_abs_diff: diff, max_rel_diff: rel, tolerance, measure, ok: value <= tolerance };
}

export function verifyGolden(o: VerifyOptions): VerifyReport {
  const golden = SafetensorsFile.open(o.golden);
  const { model } = loadModel(o.model, { dtype: 'f32' });
  try {
    for (const name of ['input_ids', 'labels']) {
      if (!golden.entries.has(name))
        throw new LmfError('golden_mismatch', `the golden file has no ${name}`, { file: o.golden });
    }
    const shape = golden.entries.get('input_ids')!.shape;
    if (shape.length !== 2)
      throw new LmfError('golden_mismatch', `input_ids must be [batch, seq], got [${shape}]`, { file: o.golden });
    const [batch, seq] = shape;
    let trainable: [string, Tensor][];
    if (o.adapter) {
      const layers = loadPeftAdapter(model, o.adapter, o.model);
      trainable = [...layers].flatMap(
        ([name, l]) =>
          [
            [`base_model.model.${name}.lora_A.weight`, l.A],
            [`base_model.model.${name}.lora_B.weight`, l.B],
          ] as [string, Tensor][],
      );
    } else {
      trainable = model.namedParameters();
      for (const [, p] of trainable) p.requiresGrad = true;
    }
    const input = { ids: Int32Array.from(golden.readNumbers('input_ids')), batch, seq };
    const reports: TensorReport[] = [];
    withScope(() => {
      if (golden.entries.has('logits')) {
        reports.push(compare('logits', model.logits(input).data, golden.readNumbers('logits'), o.atol, 'abs'));
      }
      const targets = shiftLabels(golden.readNumbers('labels'), batch, seq);
      const loss = model.loss(input, targets, tokenWeights(targets));
      if (golden.entries.has('loss'))
        reports.push(compare('loss', loss.data, golden.readNumbers('loss'), o.atol, 'abs'));
      backward(loss);
    });
    for (const [name, p] of trainable) {
      const key = `grad.${name}`;
      if (!golden.entries.has(key)) continue;
      reports.push(
        compare(key, p.grad ? p.grad.data : new Float32Array(p.size), golden.readNumbers(key), o.gradRtol, 'rel'),
      );
    }
    if (!reports.some((r) => r.name.startsWith('grad.'))) {
      throw new LmfError(
        'golden_mismatch',
        'no grad.<parameter> tensor in the golden file matches a trainable parameter',
        {
          file: o.golden,
          hint: o.adapter
            ? 'gradients of an adapter are named grad.base_model.model.<module>.lora_A.weight'
            : 'gradients are named grad.<Hugging Face parameter name>',
        },
      );
    }
    return {
      model: o.model,
      golden: o.golden,
      adapter: o.adapter ?? null,
      ok: reports.every((r) => r.ok),
      tensors: reports,
    };
  } finally {
    golden.close();
    model.dispose();
  }
}
