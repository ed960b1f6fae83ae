/**
 * Writes a model as a Hugging Face folder: config.json and model.safetensors, or shards of at most
 * `shardBytes` with model.safetensors.index.json. Every file is written atomically.
 */
import path from 'node:path';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { writeTextAtomic } from '../io/atomic.js';
import type { CausalLM } from './registry.js';

export interface SaveOptions {
  dtype: 'F32' | 'BF16' | 'F16';
  /** split into shards of at most this many bytes; 0 or absent = one file */
  shardBytes?: number;
  /** keys to set in config.json (over the ones the model was loaded with) */
  configUpdates?: Record<string, unknown>;
}

const torchDType = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' } as const;

export function saveModelFolder(model: CausalLM, dir: string, o: SaveOptions): void {
  const config = { ...model.config.raw, ...o.configUpdates, torch_dtype: torchDType[o.dtype] };
  const bytesPer = o.dtype === 'F32' ? 4 : 2;
  const params = model.namedParameters();
  const shards: [string, TensorToWrite][][] = [[]];
  let current = 0;
  for (const [name, tensor] of params) {
    const bytes = tensor.size * bytesPer;
    if (o.shardBytes && current > 0 && current + bytes > o.shardBytes) {
      shards.push([]);
      current = 0;
    }
    shards[shards.length - 1].push([name, { tensor, dtype: o.dtype }]);
    current += bytes;
  }
  if (shards.length === 1) {
    writeSafetensors(path.join(dir, 'model.safetensors'), new Map(shards[0]), { format: 'pt' });
  } else {
    const weightMap: Record<string, string> = {};
    let total = 0;
    shards.forEach((entries, i) => {
      const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
      writeSafetensors(path.join(dir, file), new Map(entries), { format: 'pt' });
      for (const [name, t] of entries) {
        weightMap[name] = file;
        total += t.tensor.size * bytesPer;
      }
    });
    writeTextAtomic(
      path.join(dir, 'model.safetensors.index.json'),
      `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`,
    );
  }
  writeTextAtomic(path.join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
}
