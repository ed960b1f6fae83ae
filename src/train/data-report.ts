/**
 * What the data step dropped, said before training: the count per reason with the first few file:row places
 * (as `lmf data check` lists them), and a stop when more than max_invalid_ratio of the rows are invalid.
 */
import type { TrainConfig } from '../config/schema.js';
import type { PreparedData } from '../data/pipeline.js';
import { LmfError } from '../errors.js';

const PLACES_SHOWN = 3;

export function reportDroppedRows(data: PreparedData, c: TrainConfig, print: (line: string) => void): void {
  const { problems, stats } = data;
  if (problems.length) {
    // rows differ only in their numbers (turn 3, message 5) share a reason
    const byReason = new Map<string, typeof problems>();
    for (const p of problems) {
      const reason = p.message.replace(/\d+/g, 'N');
      const rows = byReason.get(reason);
      if (rows) rows.push(p);
      else byReason.set(reason, [p]);
    }
    print(`data: ${problems.length} of ${stats.rowsRead} rows dropped as invalid (\`lmf data check\` lists them all):`);
    for (const [reason, rows] of [...byReason].sort((a, b) => b[1].length - a[1].length)) {
      const places = rows
        .slice(0, PLACES_SHOWN)
        .map((p) => `${p.file}:${p.row}`)
        .join(', ');
      print(`  ${rows.length} × ${reason} (${places}${rows.length > PLACES_SHOWN ? ', …' : ''})`);
    }
  }
  if (stats.noTarget)
    print(`data: ${stats.noTarget} examples dropped: no response token is left within cutoff_len ${c.cutoff_len}`);
  const ratio = stats.rowsRead ? problems.length / stats.rowsRead : 0;
  if (ratio > c.max_invalid_ratio) {
    throw new LmfError(
      'too_many_invalid_rows',
      `${problems.length} of ${stats.rowsRead} rows (${(100 * ratio).toFixed(1)}%) are invalid, more than max_invalid_ratio ${c.max_invalid_ratio}`,
      {
        key: 'max_invalid_ratio',
        hint: `first: ${problems[0].file}:${problems[0].row}: ${problems[0].message}; fix the data (\`lmf data check\`), check the dataset's columns in dataset_info.json, or raise max_invalid_ratio`,
      },
    );
  }
}
