/**
 * What `lmf train` records about its inputs in output_dir/run.json (so a result can be traced to the exact data,
 * tokenizer and template), and its check that a named template renders as the tokenizer's chat_template.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { TrainConfig } from '../config/schema.js';
import { resolveDatasets } from '../data/dataset-info.js';
import { templateFingerprint, type PreparedData } from '../data/pipeline.js';
import { templateMismatch } from '../data/templates/compare.js';
import { combinedDigest, fileDigests } from '../io/digest.js';
import { writeManifest } from '../io/manifest.js';
import { native } from '../native.js';

export function writeTrainManifest(c: TrainConfig, data: PreparedData): void {
  const datasets = resolveDatasets([...(c.dataset ?? []), ...(c.eval_dataset ?? [])], c.dataset_dir);
  writeManifest(c.output_dir, 'train', c, {
    data: [path.join(c.dataset_dir, 'dataset_info.json'), ...datasets.map((d) => d.path)].flatMap(fileDigests),
    tokenizer_sha256: combinedDigest(
      ['tokenizer.json', 'tokenizer_config.json'].map((f) => path.join(c.model_name_or_path, f)),
    ),
    template: {
      name: data.template.name,
      sha256: createHash('sha256').update(templateFingerprint(data.template, data.tokenizer)).digest('hex'),
    },
    seed: c.seed,
    threads: native.threads(),
    kernels: native.info().isa,
  });
}

/** Warns when the named template and the tokenizer's own chat_template render a conversation differently. */
export function warnTemplateMismatch(c: TrainConfig, data: PreparedData, print: (line: string) => void): void {
  if (!c.template || c.stage === 'pt' || !('spec' in data.template)) return;
  const difference = templateMismatch(data.template, data.tokenizer);
  if (difference) {
    print(
      `warning: ${difference}. A template that does not match the model teaches it the wrong turn markers ` +
        "(answers that never end); check template, or leave it unset to use the tokenizer's chat_template",
    );
  }
}
