/**
 * What `lmf train` records about its inputs in output_dir/run.json (so a result can be traced to the exact data,
 * tokenizer and template), and its check that a named template renders as the tokenizer's chat_template.
 */
import { createHash } from 'node:crypto';
import type { TrainConfig } from '../config/schema.js';
import { templateFingerprint, type PreparedData } from '../data/pipeline.js';
import { templateMismatch } from '../data/templates/compare.js';
import { combinedDigest } from '../io/digest.js';
import { writeManifest } from '../io/manifest.js';
import { native } from '../native.js';

export function writeTrainManifest(c: TrainConfig, data: PreparedData): void {
  // the digests prepareData made for its cache key: no data file is read twice
  writeManifest(c.output_dir, 'train', c, {
    data: data.inputs.data,
    tokenizer_sha256: combinedDigest(data.inputs.tokenizer),
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
