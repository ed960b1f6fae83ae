/** Pieces shared by the stage processors. */
import type { AlignedExample } from '../messages.js';
import type { ChatTemplate, EncodeOptions } from '../templates/template.js';
import type { JinjaChatTemplate } from '../templates/jinja.js';

export const IGNORE = -100;

export type AnyTemplate = ChatTemplate | JinjaChatTemplate;

/** A tokenised example: ids and labels (IGNORE where no loss is taken), of equal length. */
export interface Encoded {
  ids: number[];
  labels: number[];
}

export interface ProcessOptions {
  cutoffLen: number;
  trainOnPrompt: boolean;
  maskHistory: boolean;
  enableThinking: boolean | null;
}

export function encodeOptions(e: AlignedExample, o: ProcessOptions): EncodeOptions {
  return { system: e.system, tools: e.tools, enableThinking: o.enableThinking };
}

/**
 * LLaMA-Factory's budget split between a source of sourceLen and a target of targetLen tokens: a short
 * target is kept whole, else a short source is, else both shrink in proportion. Both are cut from the end.
 */
export function inferSeqlen(sourceLen: number, targetLen: number, cutoffLen: number): [number, number] {
  let maxTarget: number;
  if (targetLen * 2 < cutoffLen) maxTarget = cutoffLen;
  else if (sourceLen * 2 < cutoffLen) maxTarget = cutoffLen - sourceLen;
  else maxTarget = Math.floor(cutoffLen * (targetLen / (sourceLen + targetLen)));
  const newTarget = Math.min(maxTarget, targetLen);
  const newSource = Math.min(Math.max(cutoffLen - newTarget, 0), sourceLen);
  return [newSource, newTarget];
}

export function efficientEos(t: AnyTemplate): boolean {
  return 'spec' in t && t.spec.efficientEos;
}
