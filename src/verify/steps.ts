/**
 * Replays the reference's five optimiser steps (golden_steps.py, golden_families.py) on the golden batch:
 * each step forward, backward, the global gradient norm clipped to 1.0, AdamW (0.9/0.999, eps 1e-8). Full
 * fine-tuning: lr 1e-3, weight decay 0.01 on matrices only; LoRA (needs the adapter): the adapter alone, lr
 * 1e-2, no decay. Losses are compared within atol, pre-clip gradient norms within gradRtol.
 */
import path from 'node:path';
import { loadPeftAdapter } from '../adapters/peft.js';
import { LmfError } from '../errors.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { tokenWeights, type DecoderModel } from '../models/decoder.js';
import { readGoldenBatch, type GoldenBatch } from './batch.js';
import { backward } from '../tensor/autograd.js';
import { withScope, type Tensor } from '../tensor/tensor.js';
import { AdamW, type ParamGroup } from '../train/adamw.js';
import { maxOf } from '../util/arrays.js';
import {
  compare,
  loadVerifiedModel,
  reportOf,
  type TensorReport,
  type VerifyOptions,
  type VerifyReport,
} from './report.js';

/** The batch the steps ran on: golden.safetensors beside the steps file. */
function readBatch(stepsFile: string): GoldenBatch {
  const file = path.join(path.dirname(stepsFile), 'golden.safetensors');
  let g: SafetensorsFile;
  try {
    g = SafetensorsFile.open(file);
  } catch (err) {
    throw new LmfError('golden_mismatch', `the steps' batch is read from golden.safetensors beside them`, {
      file,
      hint: (err as Error).message,
    });
  }
  try {
    return readGoldenBatch(g);
  } finally {
    g.close();
  }
}

function run(
  model: DecoderModel,
  groups: ParamGroup[],
  steps: number,
  b: ReturnType<typeof readBatch>,
): { losses: number[]; norms: number[] } {
  const opt = new AdamW(groups);
  const losses: number[] = [],
    norms: number[] = [];
  try {
    for (let s = 0; s < steps; s++) {
      withScope(() => {
        const loss = model.loss(b.input, b.targets, tokenWeights(b.targets));
        losses.push(loss.data[0]);
        backward(loss);
      });
      norms.push(opt.update(1, 1.0));
      opt.zeroGrad();
    }
  } finally {
    opt.dispose();
  }
  return { losses, norms };
}

export function verifySteps(o: VerifyOptions, golden: SafetensorsFile): VerifyReport {
  const b = readBatch(o.golden);
  const reports: TensorReport[] = [];
  const check = (prefix: 'full' | 'lora', result: { losses: number[]; norms: number[] }) => {
    reports.push(compare(`${prefix}.losses`, result.losses, golden.readNumbers(`${prefix}.losses`), o.atol, 'abs'));
    const norms = golden.readNumbers(`${prefix}.grad_norms`);
    const worst = maxOf(result.norms.map((n, i) => Math.abs(n - norms[i]) / Math.abs(norms[i])));
    reports.push({
      name: `${prefix}.grad_norms`,
      max_abs_diff: maxOf(result.norms.map((n, i) => Math.abs(n - norms[i]))),
      max_rel_diff: worst,
      tolerance: o.gradRtol,
      measure: 'rel',
      ok: worst <= o.gradRtol,
    });
  };
  if (golden.entries.has('full.losses')) {
    const model = loadVerifiedModel(o, false);
    try {
      const params = model.namedParameters().map(([, p]) => p as Tensor<'f32'>);
      for (const p of params) p.requiresGrad = true;
      const steps = golden.readNumbers('full.losses').length;
      check(
        'full',
        run(
          model,
          [
            { params: params.filter((p) => p.shape.length >= 2), lr: 1e-3, weightDecay: 0.01 },
            { params: params.filter((p) => p.shape.length < 2), lr: 1e-3, weightDecay: 0 },
          ],
          steps,
          b,
        ),
      );
    } finally {
      model.dispose();
    }
  }
  if (golden.entries.has('lora.losses') && o.adapter) {
    const model = loadVerifiedModel(o, true);
    try {
      const layers = loadPeftAdapter(model, o.adapter, o.model);
      const params = [...layers.values()].flatMap((l) => [l.A, l.B]);
      check('lora', run(model, [{ params, lr: 1e-2, weightDecay: 0 }], golden.readNumbers('lora.losses').length, b));
    } finally {
      model.dispose();
    }
  }
  if (!reports.length) {
    throw new LmfError('golden_mismatch', 'the file holds LoRA steps only, and no adapter was given', {
      file: o.golden,
      hint: 'pass --adapter with the fixture adapter the steps started from',
    });
  }
  return reportOf(o, reports);
}
