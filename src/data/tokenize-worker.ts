/**
 * A worker thread that templates and tokenises chunks of examples: each worker loads the tokenizer once,
 * then answers { id, kind, items } with { id, set } (or { id, error }).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { TrainConfig } from '../config/schema.js';
import type { StageKind } from './formats.js';
import type { AlignedExample } from './messages.js';
import { processBatched, type DataStats } from './pipeline.js';
import { resolveTemplate } from './templates/registry.js';
import { HfTokenizer } from './tokenizer.js';

interface Setup {
  tokenizerDir: string;
  config: TrainConfig;
}

const { tokenizerDir, config } = workerData as Setup;
const tokenizer = HfTokenizer.fromDir(tokenizerDir);
const template = resolveTemplate(config.template, tokenizer, config.stage);

parentPort!.on('message', async (msg: { id: number; kind: StageKind; items: AlignedExample[] }) => {
  try {
    const stats: DataStats = { rowsRead: 0, rowsDropped: 0, examples: 0, truncated: 0, noTarget: 0, lengths: [] };
    const set = await processBatched(msg.kind, msg.items, template, tokenizer, config, stats, true);
    parentPort!.postMessage({ id: msg.id, set, truncated: stats.truncated, noTarget: stats.noTarget });
  } catch (err) {
    parentPort!.postMessage({ id: msg.id, error: (err as Error).message });
  }
});
