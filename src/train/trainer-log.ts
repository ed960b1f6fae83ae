/**
 * trainer_log.jsonl (one line per logging step, LLaMA-Factory's fields plus throughput) and the progress
 * line on the terminal.
 */
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import type { LogRecord } from '../wire.js';

export type { LogRecord } from '../wire.js';

/** h:mm:ss as LLaMA-Factory writes durations */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

export function appendLog(outputDir: string, record: LogRecord): void {
  appendFileSync(path.join(outputDir, 'trainer_log.jsonl'), `${JSON.stringify(record)}\n`);
}

/** ranks: the data-parallel world's size (tokens/s is then the whole job's) */
export function progressLine(r: LogRecord, ranks = 1): string {
  const parts = [`step ${r.current_steps}/${r.total_steps}`];
  if (r.loss !== undefined) parts.push(`loss ${r.loss.toFixed(4)}`);
  if (r.eval_loss !== undefined) parts.push(`eval_loss ${r.eval_loss.toFixed(4)}`);
  for (const key of ['eval_accuracy', 'eval_rewards/accuracies']) {
    const v = r[key];
    if (typeof v === 'number') parts.push(`${key} ${v.toFixed(3)}`);
  }
  if (r.lr !== undefined) parts.push(`lr ${r.lr.toExponential(2)}`);
  if (r.tokens_per_s !== undefined)
    parts.push(`${r.tokens_per_s.toFixed(0)} tok/s${ranks > 1 ? ` on ${ranks} ranks` : ''}`);
  parts.push(`epoch ${r.epoch.toFixed(2)}`, `${r.elapsed_time} elapsed`, `ETA ${r.remaining_time}`);
  return parts.join(' | ');
}
