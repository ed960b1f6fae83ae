/**
 * dataset_info.json: the catalogue of datasets in dataset_dir, with LLaMA-Factory's fields. Each entry
 * says where the rows are (file_name: a file or a folder), their format, and which columns mean what.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { LmfError } from '../errors.js';
import { resolveHubPath } from '../io/hub-download.js';
import { hubDatasetFiles, type HubDataset } from './hub-datasets.js';
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
  /** absolute path of the file or folder; for a Hub dataset, hf://datasets/<id> */
  path: string;
  /** a Hub dataset (hf_hub_url): where its files are chosen from; `files` holds them once fetched */
  hub?: HubDataset;
  files?: string[];
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

/** Why an entry's location cannot be read here (null when it can). */
function remoteRefusal(e: DatasetEntry): string | null {
  if (e.ms_hub_url) return `ms_hub_url ${e.ms_hub_url}: ModelScope is not supported`;
  if (e.om_hub_url) return `om_hub_url ${e.om_hub_url}: Modelers is not supported`;
  if (e.file_name) return null;
  if (e.script_url) return `script_url ${e.script_url}: loading scripts are not run`;
  if (e.cloud_file_name) return `cloud_file_name ${e.cloud_file_name}: S3 and GCS are not read`;
  return null;
}

/** Fetches the files of every Hub dataset among `attrs` (into the Hugging Face cache), in place. */
export async function fetchHubFiles(attrs: DatasetAttr[], print?: (line: string) => void): Promise<void> {
  for (const a of attrs) if (a.hub && !a.files) a.files = await hubDatasetFiles(a.hub, process.env, print);
}

/**
 * The folder holding dataset_info.json for LLaMA-Factory's dataset_dir forms: a folder; `REMOTE:<repo>`, whose
 * dataset_info.json and the files it names come from that Hub dataset repository (into the Hugging Face cache);
 * `ONLINE` (null): every dataset name is a Hub dataset id.
 */
export async function catalogueDir(datasetDir: string, print?: (line: string) => void): Promise<string | null> {
  if (datasetDir === 'ONLINE') return null;
  if (!datasetDir.startsWith('REMOTE:')) return datasetDir;
  const id = datasetDir.slice('REMOTE:'.length);
  return resolveHubPath(id, {
    kind: 'dataset',
    print,
    files: async (all, readText) => {
      const text = await readText('dataset_info.json');
      if (text === null)
        throw new LmfError('dataset_info_missing', `the dataset repository ${id} has no dataset_info.json`, {
          key: 'dataset_dir',
        });
      let entries: Record<string, { file_name?: string }>;
      try {
        entries = JSON.parse(text) as Record<string, { file_name?: string }>;
      } catch (err) {
        throw new LmfError('bad_dataset_info', `dataset_info.json of ${id} is not JSON (${(err as Error).message})`, {
          key: 'dataset_dir',
        });
      }
      const named = Object.values(entries).flatMap((e) => (e.file_name ? [e.file_name.replace(/\/+$/, '')] : []));
      return ['dataset_info.json', ...all.filter((f) => named.some((n) => f === n || f.startsWith(`${n}/`)))];
    },
  });
}

/** Resolves the dataset names of a config (comma-separated) against the catalogue (null: ONLINE, Hub ids). */
export function resolveDatasets(names: string[], datasetDir: string | null): DatasetAttr[] {
  const info: Record<string, DatasetEntry> =
    datasetDir === null ? Object.fromEntries(names.map((n) => [n, { hf_hub_url: n }])) : readDatasetInfo(datasetDir);
  const file = datasetDir === null ? 'dataset_dir: ONLINE' : path.join(datasetDir, 'dataset_info.json');
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
    // as LLaMA-Factory: a Hub location wins over file_name
    const refused = !e.hf_hub_url && remoteRefusal(e);
    if (refused)
      throw new LmfError('remote_dataset', `dataset "${name}": ${refused}`, {
        file,
        key: name,
        hint: 'download the files yourself and point file_name at them (or use hf_hub_url)',
      });
    if (!e.file_name && !e.hf_hub_url)
      throw new LmfError('bad_dataset_info', `dataset "${name}" names no file_name or hf_hub_url`, { file, key: name });
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
    const hub = e.hf_hub_url
      ? { id: e.hf_hub_url, subset: e.subset, split: e.split ?? 'train', folder: e.folder }
      : undefined;
    return {
      name,
      path: hub ? `hf://datasets/${hub.id}` : path.resolve(datasetDir ?? '.', e.file_name!),
      hub,
      formatting,
      ranking: e.ranking ?? false,
      split: e.split ?? 'train',
      numSamples: e.num_samples,
      columns,
      tags: { ...sharegptDefaults, ...e.tags },
    };
  });
}
