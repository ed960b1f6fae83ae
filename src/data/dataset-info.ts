/**
 * dataset_info.json: the catalogue of datasets in dataset_dir, with LLaMA-Factory's fields. Each entry
 * says where the rows are (file_name: a file or a folder), their format, and which columns mean what.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { LmfError } from '../errors.js';
import { closest } from '../util/closest.js';

const columnsSchema = z.strictObject({
  prompt: z.string().optional(),
  query: z.string().optional(),
  response: z.string().optional(),
  history: z.string().optional(),
  messages: z.string().optional(),
  system: z.string().optional(),
  tools: z.string().optional(),
  images: z.string().optional(),
  videos: z.string().optional(),
  audios: z.string().optional(),
  chosen: z.string().optional(),
  rejected: z.string().optional(),
  kto_tag: z.string().optional(),
});

const tagsSchema = z.strictObject({
  role_tag: z.string().optional(),
  content_tag: z.string().optional(),
  user_tag: z.string().optional(),
  assistant_tag: z.string().optional(),
  observation_tag: z.string().optional(),
  function_tag: z.string().optional(),
  system_tag: z.string().optional(),
});

const entrySchema = z.strictObject({
  file_name: z.string().optional(),
  hf_hub_url: z.string().optional(),
  ms_hub_url: z.string().optional(),
  om_hub_url: z.string().optional(),
  script_url: z.string().optional(),
  cloud_file_name: z.string().optional(),
  formatting: z.enum(['alpaca', 'sharegpt', 'openai']).optional(),
  ranking: z.boolean().optional(),
  subset: z.string().optional(),
  split: z.string().optional(),
  folder: z.string().optional(),
  num_samples: z.number().int().positive().optional(),
  columns: columnsSchema.optional(),
  tags: tagsSchema.optional(),
});

export type DatasetEntry = z.infer<typeof entrySchema>;

export interface DatasetAttr {
  name: string;
  /** absolute path of the file or folder */
  path: string;
  formatting: 'alpaca' | 'sharegpt' | 'openai';
  ranking: boolean;
  split: string;
  numSamples?: number;
  columns: z.infer<typeof columnsSchema>;
  tags: Required<z.infer<typeof tagsSchema>>;
}

export function readDatasetInfo(datasetDir: string): Record<string, DatasetEntry> {
  const file = path.join(datasetDir, 'dataset_info.json');
  if (!existsSync(file)) {
    throw new LmfError('dataset_info_missing', 'dataset_info.json not found', {
      file,
      key: 'dataset_dir',
      hint: 'dataset_dir must name the folder that holds dataset_info.json',
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new LmfError('bad_json', `dataset_info.json is not valid JSON (${(err as Error).message})`, { file });
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new LmfError('bad_dataset_info', 'dataset_info.json must be an object of dataset name -> description', {
      file,
    });
  }
  const out: Record<string, DatasetEntry> = {};
  for (const [name, entry] of Object.entries(raw as Record<string, unknown>)) {
    const parsed = entrySchema.safeParse(entry);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const keyPath = [name, ...issue.path.map(String)];
      const unknown = issue.code === 'unrecognized_keys' ? issue.keys[0] : null;
      const known =
        issue.path.length === 0
          ? Object.keys(entrySchema.shape)
          : issue.path[0] === 'columns'
            ? Object.keys(columnsSchema.shape)
            : Object.keys(tagsSchema.shape);
      const near = unknown ? closest(unknown, known) : null;
      throw new LmfError('bad_dataset_info', unknown ? `unknown field "${unknown}"` : issue.message, {
        file,
        key: [...keyPath, ...(unknown ? [unknown] : [])].join('.'),
        hint: near ? `did you mean "${near}"?` : unknown ? `known fields: ${known.join(', ')}` : undefined,
      });
    }
    out[name] = parsed.data;
  }
  return out;
}

/** Resolves the dataset names of a config (comma-separated) against the catalogue. */
export function resolveDatasets(names: string[], datasetDir: string): DatasetAttr[] {
  const info = readDatasetInfo(datasetDir);
  const file = path.join(datasetDir, 'dataset_info.json');
  return names.map((name) => {
    const e = info[name];
    if (!e) {
      const near = closest(name, Object.keys(info));
      throw new LmfError('unknown_dataset', `dataset "${name}" is not defined in dataset_info.json`, {
        file,
        key: 'dataset',
        hint: near ? `did you mean "${near}"?` : `defined: ${Object.keys(info).join(', ') || 'none'}`,
      });
    }
    if (!e.file_name) {
      const remote = e.hf_hub_url ?? e.ms_hub_url ?? e.om_hub_url ?? e.cloud_file_name ?? e.script_url;
      throw new LmfError(
        'remote_dataset',
        `dataset "${name}" lives at ${remote ?? 'no location'}, which cannot be downloaded here`,
        {
          file,
          key: name,
          hint: 'download the files yourself and point file_name at them',
        },
      );
    }
    const formatting = e.formatting ?? 'alpaca';
    const sharegptDefaults =
      formatting === 'openai'
        ? {
            role_tag: 'role',
            content_tag: 'content',
            user_tag: 'user',
            assistant_tag: 'assistant',
            observation_tag: 'tool',
            function_tag: 'function_call',
            system_tag: 'system',
          }
        : {
            role_tag: 'from',
            content_tag: 'value',
            user_tag: 'human',
            assistant_tag: 'gpt',
            observation_tag: 'observation',
            function_tag: 'function_call',
            system_tag: 'system',
          };
    const columns =
      formatting === 'alpaca'
        ? { prompt: 'instruction', query: 'input', response: 'output', history: undefined, ...e.columns }
        : { messages: 'conversations', ...e.columns };
    return {
      name,
      path: path.resolve(datasetDir, e.file_name),
      formatting,
      ranking: e.ranking ?? false,
      split: e.split ?? 'train',
      numSamples: e.num_samples,
      columns,
      tags: { ...sharegptDefaults, ...e.tags },
    };
  });
}
