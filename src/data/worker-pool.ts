/**
 * Tokenisation on worker threads: examples are cut into chunks, each worker templates and tokenises its
 * chunks, and the results are put back in the original order, so the output does not depend on the
 * number of workers.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { LmfError } from '../errors.js';
import type { TrainConfig } from '../config/schema.js';
import type { StageKind } from './formats.js';
import type { AlignedExample } from './messages.js';
import type { ProcessedSet } from './pipeline.js';

interface Reply {
  id: number;
  set?: ProcessedSet;
  truncated?: number;
  noTarget?: number;
  error?: string;
}

const fromSources = import.meta.url.endsWith('.ts');

function startWorker(setup: unknown): Worker {
  if (!fromSources) return new Worker(new URL('./tokenize-worker.js', import.meta.url), { workerData: setup });
  // from TypeScript sources (tests, development): the worker registers tsx itself before importing
  const entry = JSON.stringify(new URL('./tokenize-worker.ts', import.meta.url).href);
  const code = `import('tsx/esm/api').then(({ register }) => { register(); return import(${entry}); });`;
  return new Worker(code, { eval: true, workerData: setup });
}

export function workerCount(config: TrainConfig): number {
  return Math.max(1, config.preprocessing_num_workers ?? availableParallelism());
}

/** Runs the stage processor over `items` on `n` workers; returns the chunk results in order. */
export async function processOnWorkers(
  kind: StageKind,
  items: AlignedExample[],
  config: TrainConfig,
  tokenizerDir: string,
  n: number,
): Promise<{ sets: ProcessedSet[]; truncated: number; noTarget: number }> {
  const chunkSize = Math.max(64, Math.ceil(items.length / (n * 8)));
  const chunks: AlignedExample[][] = [];
  for (let i = 0; i < items.length; i += chunkSize) chunks.push(items.slice(i, i + chunkSize));
  const results: ProcessedSet[] = new Array(chunks.length);
  let truncated = 0,
    noTarget = 0;
  let next = 0;
  const workers = Array.from({ length: Math.min(n, chunks.length) }, () => startWorker({ tokenizerDir, config }));
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            const send = () => {
              if (next >= chunks.length) return resolve();
              const id = next++;
              w.postMessage({ id, kind, items: chunks[id] });
            };
            w.on('message', (r: Reply) => {
              if (r.error) return reject(new LmfError('tokenize_failed', r.error));
              results[r.id] = r.set!;
              truncated += r.truncated ?? 0;
              noTarget += r.noTarget ?? 0;
              send();
            });
            w.on('error', reject);
            send();
          }),
      ),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return { sets: results, truncated, noTarget };
}
