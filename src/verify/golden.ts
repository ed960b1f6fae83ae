/**
 * `lmf verify`: checks a model folder (and optionally a PEFT adapter) against a golden file from the PyTorch
 * reference. A batch file (input_ids, labels) compares logits, loss and every gradient; golden_train files
 * (full.losses, lora.losses) replay five optimiser steps (steps.ts); golden_dpo files (chosen_ids …) the DPO
 * loss (dpo.ts). This is how a new model family is checked against a reference dump.
 */
import { loadPeftAdapter } from '../adapters/peft.js';
import { LmfError } from '../errors.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { tokenWeights } from '../models/decoder.js';
import { backward } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';
import { withScope } from '../tensor/tensor.js';
import { verifyDpo } from './dpo.js';
import {
  adapterParameters,
  compare,
  loadVerifiedModel,
  reportOf,
  type TensorReport,
  type VerifyOptions,
  type VerifyReport,
} from './report.js';
import { verifySteps } from './steps.js';
import { readGoldenBatch, tokenRows } from './batch.js';

export type { VerifyOptions, VerifyReport } from './report.js';

export function verifyGolden(o: VerifyOptions): VerifyReport {
  const golden = SafetensorsFile.open(o.golden);
  if (golden.entries.has('chosen_ids')) return withClose(golden, () => verifyDpo(o, golden));
  if (golden.entries.has('full.losses') || golden.entries.has('lora.losses'))
    return withClose(golden, () => verifySteps(o, golden));
  const model = loadVerifiedModel(o, o.adapter !== undefined);
  try {
    const { input, targets, mask } = readGoldenBatch(golden);
    let trainable: [string, Tensor][];
    if (o.adapter) {
      trainable = adapterParameters(loadPeftAdapter(model, o.adapter, o.model));
    } else {
      trainable = model.namedParameters();
      for (const [, p] of trainable) p.requiresGrad = true;
    }
    const reports: TensorReport[] = [];
    withScope(() => {
      if (golden.entries.has('logits')) {
        const logits = tokenRows(model.logits(input).data, mask);
        reports.push(compare('logits', logits, tokenRows(golden.readNumbers('logits'), mask), o.atol, 'abs'));
      }
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
    return reportOf(o, reports);
  } finally {
    golden.close();
    model.dispose();
  }
}

function withClose<R>(file: SafetensorsFile, fn: () => R): R {
  try {
    return fn();
  } finally {
    file.close();
  }
}
