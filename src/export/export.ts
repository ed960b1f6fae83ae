/**
 * `lmf export`: the base model with every adapter merged (in f32), written as a Hugging Face folder to
 * export_dir (safetensors in export_size-GB shards, the tokenizer files, config and generation config), and
 * optionally a GGUF file beside it. The folder is assembled under a temporary name and renamed into place,
 * so export_dir is either the previous export or the complete new one. Only an earlier export of ours (its
 * run.json says so) is ever replaced: a folder holding anything else, or overlapping an input, is refused.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { TrainConfig } from '../config/schema.js';
import { LmfError } from '../errors.js';
import { writeTextAtomic } from '../io/atomic.js';
import { alive, ensureDir, refuseOverlap, removeStaleTemps, tempPath } from '../io/dirs.js';
import { readManifest, writeManifest } from '../io/manifest.js';
import { loadInference } from '../infer/load.js';
import { readModelConfig } from '../models/config.js';
import { saveModelFolder } from '../models/save.js';
import { writeGguf } from './gguf.js';

const tokenizerFiles = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
  'chat_template.jinja',
];

const fileDtype = { float32: 'F32', bfloat16: 'BF16', float16: 'F16' } as const;

/** export_dtype from infer_dtype; auto keeps the checkpoint's own precision (f32 when it names none). */
function exportDtype(c: TrainConfig, checkpoint: unknown): 'F32' | 'BF16' | 'F16' {
  if (c.infer_dtype !== 'auto') return fileDtype[c.infer_dtype];
  return fileDtype[checkpoint as keyof typeof fileDtype] ?? 'F32';
}

export interface ExportResult {
  dir: string;
  files: string[];
}

export function exportModel(c: TrainConfig, print: (line: string) => void = () => {}): ExportResult {
  if (!c.export_dir)
    throw new LmfError('missing_key', 'export needs export_dir: the folder to write the merged model to', {
      key: 'export_dir',
    });
  if (readModelConfig(c.model_name_or_path).raw.quantization_config)
    throw new LmfError('unsupported', 'a quantized model cannot be merged and exported', {
      key: 'model_name_or_path',
      hint: 'point model_name_or_path at the unquantized base the adapter was trained for (as LLaMA-Factory says)',
    });
  const target = path.resolve(c.export_dir);
  refuseOverlap({ key: 'export_dir', path: c.export_dir }, [
    { key: 'model_name_or_path', path: c.model_name_or_path },
    ...(c.adapter_name_or_path ?? []).map((a) => ({ key: 'adapter_name_or_path', path: a })),
  ]);
  restoreInterruptedExport(target, print);
  refuseForeignContents(target);
  const m = loadInference({
    model: c.model_name_or_path,
    adapters: c.adapter_name_or_path,
    template: c.template,
    dtype: 'f32',
    mergeAll: true,
    ropeScaling: c.rope_scaling ? { kind: c.rope_scaling, modelMaxLength: null } : null,
  });
  ensureDir(path.dirname(target), 'export_dir');
  removeStaleTemps(path.dirname(target), `${path.basename(target)}.tmp-`);
  const tmp = tempPath(target);
  try {
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    const dtype = exportDtype(c, m.model.config.raw.torch_dtype);
    print(
      `merging ${c.adapter_name_or_path?.length ?? 0} adapter(s) into ${c.model_name_or_path}; writing ${dtype} shards of at most ${c.export_size} GB`,
    );
    saveModelFolder(m.model, tmp, { dtype, shardBytes: c.export_size * 1e9 });
    for (const f of tokenizerFiles)
      if (existsSync(path.join(c.model_name_or_path, f)))
        copyFileSync(path.join(c.model_name_or_path, f), path.join(tmp, f));
    const generation = path.join(c.model_name_or_path, 'generation_config.json');
    if (existsSync(generation)) copyFileSync(generation, path.join(tmp, 'generation_config.json'));
    else {
      const cfg = m.model.config;
      writeTextAtomic(
        path.join(tmp, 'generation_config.json'),
        `${JSON.stringify(
          {
            bos_token_id: cfg.bosTokenId ?? undefined,
            eos_token_id: cfg.eosTokenIds.length === 1 ? cfg.eosTokenIds[0] : cfg.eosTokenIds,
            pad_token_id: cfg.padTokenId ?? undefined,
          },
          null,
          2,
        )}\n`,
      );
    }
    if (c.export_gguf) {
      print(`writing model.gguf (${c.export_gguf})`);
      writeGguf(path.join(tmp, 'model.gguf'), m.model, c.model_name_or_path, c.export_gguf, path.basename(target));
    }
    writeManifest(tmp, 'export', c);
    const old = existsSync(target) ? `${tmp}-previous` : null;
    if (old) renameSync(target, old);
    renameSync(tmp, target);
    if (old) rmSync(old, { recursive: true, force: true });
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    m.dispose();
  }
  return { dir: target, files: readdirSync(target).sort() };
}

/**
 * An export killed between its two renames left export_dir missing and the previous export beside it as
 * `NAME.tmp-PID-previous`: put it back before anything else, so that no cleanup can take it.
 */
function restoreInterruptedExport(target: string, print: (line: string) => void): void {
  if (existsSync(target) || !existsSync(path.dirname(target))) return;
  const prefix = `${path.basename(target)}.tmp-`;
  const previous = readdirSync(path.dirname(target)).find((n) => {
    const m = /\.tmp-(\d+)-previous$/.exec(n);
    return n.startsWith(prefix) && m !== null && !alive(Number(m[1]));
  });
  if (!previous) return;
  renameSync(path.join(path.dirname(target), previous), target);
  print(`restored the previous export of ${target} that an interrupted export had moved aside`);
}

/** An existing export_dir must be empty or an earlier export of ours: replacing it must not delete the user's files. */
function refuseForeignContents(target: string): void {
  if (!existsSync(target)) return;
  const entries = readdirSync(target);
  if (!entries.length || readManifest(target)?.command === 'export') return;
  throw new LmfError(
    'export_dir_not_empty',
    `export_dir holds files that are not an LMFactory export (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''})`,
    {
      file: target,
      key: 'export_dir',
      hint: 'choose a new or empty folder; an earlier `lmf export` there (with its run.json) is replaced',
    },
  );
}
