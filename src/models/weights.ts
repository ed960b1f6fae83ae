/**
 * The weights of a Hugging Face model folder: model.safetensors, or shards listed by
 * model.safetensors.index.json. Knows which file holds which tensor; reads them one at a time.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { LmfError } from '../errors.js';
import { SafetensorsFile, type TensorEntry } from '../io/safetensors.js';
import type { Tensor } from '../tensor/tensor.js';

export class WeightFolder {
  readonly dir: string;
  private files = new Map<string, SafetensorsFile>();
  private where = new Map<string, SafetensorsFile>();

  private constructor(dir: string) {
    this.dir = dir;
  }

  static open(dir: string): WeightFolder {
    const w = new WeightFolder(dir);
    const single = path.join(dir, 'model.safetensors');
    const index = path.join(dir, 'model.safetensors.index.json');
    if (existsSync(single)) {
      w.add(single);
    } else if (existsSync(index)) {
      let map: Record<string, string>;
      try {
        map = (JSON.parse(readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map;
        if (!map || typeof map !== 'object') throw new Error('no weight_map');
      } catch (err) {
        throw new LmfError('bad_index', `the shard index cannot be read (${(err as Error).message})`, { file: index });
      }
      for (const shard of new Set(Object.values(map))) w.add(path.join(dir, shard));
      for (const [name, shard] of Object.entries(map)) {
        const file = w.files.get(path.join(dir, shard))!;
        if (!file.entries.has(name)) {
          throw new LmfError('missing_tensor', `the index places the tensor in ${shard}, which does not hold it`, {
            file: path.join(dir, shard),
            tensor: name,
            hint: 'the shards and the index come from different checkpoints',
          });
        }
      }
    } else {
      throw new LmfError(
        'weights_missing',
        'no model.safetensors or model.safetensors.index.json in the model folder',
        { file: dir, hint: 'LMFactory reads safetensors weights; convert .bin checkpoints with transformers first' },
      );
    }
    return w;
  }

  private add(file: string): void {
    const f = SafetensorsFile.open(file);
    this.files.set(file, f);
    for (const name of f.entries.keys()) this.where.set(name, f);
  }

  names(): string[] {
    return [...this.where.keys()];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  entry(name: string): TensorEntry & { file: string } {
    const f = this.where.get(name);
    if (!f)
      throw new LmfError('missing_tensor', 'the model folder has no such tensor', { file: this.dir, tensor: name });
    return { ...f.entries.get(name)!, file: f.file };
  }

  /** Reads a tensor, checking its shape against what the config implies. */
  read(name: string, shape: readonly number[], dtype: 'f32' | 'bf16'): Tensor<'f32' | 'bf16'> {
    const e = this.entry(name);
    if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i])) {
      throw new LmfError('shape_mismatch', `shape [${e.shape}] in the file, [${shape}] expected from config.json`, {
        file: e.file,
        tensor: name,
        hint: 'config.json and the weights come from different models',
      });
    }
    return this.where.get(name)!.read(name, dtype);
  }

  /** A tensor's bytes as stored, with its entry (dtype, shape) and file. */
  raw(name: string): { entry: TensorEntry & { file: string }; bytes: Uint8Array } {
    const entry = this.entry(name);
    return { entry, bytes: this.where.get(name)!.readRaw(name) };
  }

  close(): void {
    for (const f of this.files.values()) f.close();
  }
}
