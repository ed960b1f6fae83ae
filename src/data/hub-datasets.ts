/**
 * dataset_info.json entries with hf_hub_url: the dataset repository's data files for the entry's subset and split,
 * chosen as the datasets library chooses them (the card's `configs`, else split names in file and folder names),
 * downloaded into the Hugging Face cache by io/hub-download.ts and read by our loaders. With HF_HUB_OFFLINE the
 * cached snapshot is used as it is.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { minimatch } from 'minimatch';
import { parse as parseYaml } from 'yaml';
import { LmfError } from '../errors.js';
import { findCachedSnapshot, hubCacheDirs } from '../io/hub-cache.js';
import { downloadSnapshot, hubAccess } from '../io/hub-download.js';

export interface HubDataset {
  /** org/name of the dataset repository */
  id: string;
  /** the card's config_name (LLaMA-Factory's subset) */
  subset?: string;
  split: string;
  /** a folder of the repository the files lie under (LLaMA-Factory's folder, datasets' data_dir) */
  folder?: string;
}

const dataFile = /\.(parquet|jsonl|json|csv|txt)$/;

/** File and folder names that name a split, as the datasets library reads them. */
const splitKeywords: Record<string, string[]> = {
  train: ['train', 'training'],
  validation: ['validation', 'valid', 'dev', 'val'],
  test: ['test', 'testing', 'eval', 'evaluation'],
};

/** The entries of a card's `configs` list that are objects. */
const asConfigs = (value: unknown): CardConfig[] =>
  Array.isArray(value) ? (value.filter((c) => c && typeof c === 'object') as CardConfig[]) : [];

interface CardConfig {
  config_name?: string;
  default?: boolean;
  data_dir?: string;
  data_files?: string | string[] | { split: string; path: string | string[] }[];
}

/** The `configs` of a dataset card's YAML header (empty when it has none). */
function cardConfigs(card: string | null): CardConfig[] {
  const header = card && /^---\r?\n([\s\S]*?)\r?\n---/.exec(card);
  if (!header) return [];
  try {
    return asConfigs((parseYaml(header[1]) as { configs?: unknown } | null)?.configs);
  } catch {
    return [];
  }
}

function bad(d: HubDataset, message: string, hint?: string): LmfError {
  return new LmfError('hub_dataset', `dataset ${d.id}: ${message}`, { key: 'hf_hub_url', hint });
}

/** The repository files (relative paths) that make the entry's split. */
export function selectDataFiles(all: string[], card: string | null, d: HubDataset): string[] {
  const configs = cardConfigs(card);
  return configs.length ? fromCardConfig(all, configs, d) : fromSplitNames(all, d);
}

function fromCardConfig(all: string[], configs: CardConfig[], d: HubDataset): string[] {
  const names = configs.map((c) => c.config_name ?? 'default');
  const config = d.subset
    ? configs.find((c) => (c.config_name ?? 'default') === d.subset)
    : (configs.find((c) => c.default) ??
      configs.find((c) => (c.config_name ?? 'default') === 'default') ??
      (configs.length === 1 ? configs[0] : undefined));
  if (!config)
    throw bad(
      d,
      d.subset ? `its card has no config "${d.subset}"` : 'its card has several configs and none is the default',
      `set "subset" in dataset_info.json to one of: ${names.join(', ')}`,
    );
  const spec = config.data_files ?? '**';
  const bySplit: Record<string, string[]> =
    typeof spec === 'string'
      ? { train: [spec] }
      : spec.every((s) => typeof s === 'string')
        ? { train: spec as string[] }
        : Object.fromEntries(
            (spec as { split: string; path: string | string[] }[]).map((s) => [s.split, [s.path].flat()]),
          );
  const patterns = bySplit[d.split];
  if (!patterns)
    throw bad(
      d,
      `config "${config.config_name ?? 'default'}" has no split "${d.split}"`,
      `splits: ${Object.keys(bySplit).join(', ')}`,
    );
  const base = [config.data_dir, d.folder].filter(Boolean).join('/');
  const chosen = all.filter((f) => patterns.some((p) => minimatch(f, base ? `${base}/${p}` : p, { dot: false })));
  if (!chosen.length) throw bad(d, `no file matches ${patterns.join(', ')} for split "${d.split}"`);
  return chosen.sort();
}

function fromSplitNames(all: string[], d: HubDataset): string[] {
  if (d.subset && d.subset !== 'default')
    throw bad(
      d,
      `its card declares no configs, so subset "${d.subset}" cannot be chosen`,
      'remove "subset" or use "folder"',
    );
  const base = d.folder ? `${d.folder.replace(/\/+$/, '')}/` : '';
  const candidates = all.filter(
    (f) => f.startsWith(base) && dataFile.test(f) && !f.split('/').some((p) => p.startsWith('.')),
  );
  if (!candidates.length) {
    const script = all.find((f) => f.endsWith('.py'));
    throw bad(
      d,
      script
        ? `it is a loading script (${script}), which is not run here`
        : 'it has no parquet, json, jsonl, csv or txt files',
    );
  }
  const splitOf = (file: string): string | null => {
    const rel = file.slice(base.length);
    const dirs = rel.split('/').slice(0, -1);
    const name = rel.split('/').pop()!;
    for (const [split, words] of Object.entries(splitKeywords)) {
      for (const w of words) {
        if (dirs.includes(w) || new RegExp(`^(?:.*[-._ 0-9])?${w}[-._ 0-9]`).test(name)) return split;
      }
    }
    return null;
  };
  const named = candidates.map((f) => [f, splitOf(f)] as const);
  if (named.every(([, s]) => s === null)) {
    if (d.split !== 'train') throw bad(d, `its files name no splits, so all are "train", not "${d.split}"`);
    return candidates.sort();
  }
  const chosen = named.filter(([, s]) => s === d.split).map(([f]) => f);
  if (!chosen.length)
    throw bad(
      d,
      `no file names split "${d.split}"`,
      `splits found: ${[...new Set(named.map(([, s]) => s).filter(Boolean))].join(', ')}`,
    );
  return chosen.sort();
}

/** Every file of a snapshot folder, relative (links followed). */
function filesUnder(dir: string, prefix = ''): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? filesUnder(full, `${prefix}${name}/`) : [`${prefix}${name}`];
  });
}

/** The local paths of the entry's data files: downloaded into the cache, or found there when offline. */
export async function hubDatasetFiles(
  d: HubDataset,
  env: NodeJS.ProcessEnv = process.env,
  print?: (line: string) => void,
): Promise<string[]> {
  const access = hubAccess(env);
  if (access.offline) {
    const { snapshot, searched } = findCachedSnapshot(d.id, 'main', 'dataset', env);
    if (!snapshot)
      throw bad(d, 'not in the Hugging Face cache, and HF_HUB_OFFLINE is set', `searched ${searched.join(', ')}`);
    const all = filesUnder(snapshot);
    const card = all.includes('README.md') ? readFileSync(path.join(snapshot, 'README.md'), 'utf8') : null;
    return selectDataFiles(all, card, d).map((f) => path.join(snapshot, f));
  }
  let chosen: string[] = [];
  const snapshot = await downloadSnapshot({
    id: d.id,
    kind: 'dataset',
    revision: 'main',
    access,
    cacheDir: hubCacheDirs(env)[0],
    print,
    files: async (all, readText) => {
      const card = all.includes('README.md') ? await readText('README.md') : null;
      chosen = selectDataFiles(all, card, d);
      // the card comes along, so that an offline run chooses the same files
      return card === null ? chosen : [...chosen, 'README.md'];
    },
  });
  return chosen.map((f) => path.join(snapshot, f));
}
