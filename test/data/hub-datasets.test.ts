// dataset_info.json entries with hf_hub_url: which files make a subset's split (the card's configs, else split
// names in paths, as the datasets library decides), and the whole path against a Hub on loopback: download into
// the cache, read by our loaders (parquet and jsonl), then offline from the cache. ModelScope and Modelers are
// refused by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { loadConfig } from '../../src/config/load.js';
import { selectDataFiles } from '../../src/data/hub-datasets.js';
import { prepareData } from '../../src/data/pipeline.js';
import type { LmfError } from '../../src/errors.js';
import { makeTinyModelFolder } from '../helpers.js';
import { startHubServer } from '../io/hub-server.js';

const card = `---
license: mit
configs:
- config_name: en
  default: true
  data_files:
  - split: train
    path: en/train-*.parquet
  - split: test
    path: en/test-*.parquet
- config_name: zh
  data_files: zh/*.jsonl
---
# a dataset
`;

test('the card’s configs choose a subset’s split; without configs, split names in paths do (train when none)', () => {
  const files = [
    'README.md',
    'en/train-00000-of-00002.parquet',
    'en/train-00001-of-00002.parquet',
    'en/test-00000-of-00001.parquet',
    'zh/all.jsonl',
  ];
  const pick = (subset: string | undefined, split: string) =>
    selectDataFiles(files, card, { id: 'a/b', subset, split });
  assert.deepEqual(pick(undefined, 'train'), ['en/train-00000-of-00002.parquet', 'en/train-00001-of-00002.parquet']);
  assert.deepEqual(pick('en', 'test'), ['en/test-00000-of-00001.parquet']);
  assert.deepEqual(pick('zh', 'train'), ['zh/all.jsonl']);
  assert.throws(() => pick('fr', 'train'), /no config "fr"[\s\S]*/);
  assert.throws(() => pick('zh', 'test'), /config "zh" has no split "test"/);

  const plain = [
    'README.md',
    'data/train-00000.parquet',
    'data/validation.parquet',
    'data/trainer_notes.json',
    '.gitattributes',
  ];
  const split = (s: string, folder?: string) => selectDataFiles(plain, null, { id: 'a/b', split: s, folder });
  assert.deepEqual(split('train'), ['data/train-00000.parquet']); // trainer_notes names no split
  assert.deepEqual(split('validation'), ['data/validation.parquet']);
  assert.throws(() => split('test'), /no file names split "test"/);
  assert.deepEqual(
    selectDataFiles(['x/a.json', 'x/b.json', 'y/c.json'], null, { id: 'a/b', split: 'train', folder: 'x' }),
    ['x/a.json', 'x/b.json'],
  );
  assert.throws(
    () => selectDataFiles(['b.py', 'README.md'], null, { id: 'a/b', split: 'train' }),
    /loading script \(b\.py\)/,
  );
  assert.throws(
    () => selectDataFiles(['a.json'], null, { id: 'a/b', split: 'train', subset: 'x' }),
    /declares no configs/,
  );
});

test('an hf_hub_url dataset downloads its split’s files into the cache and trains from them; offline it reads the cache', async () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-hub-data-'));
  const repo = path.join(work, 'repo');
  mkdirSync(path.join(repo, 'en'), { recursive: true });
  mkdirSync(path.join(repo, 'zh'));
  writeFileSync(path.join(repo, 'README.md'), card);
  const rows = (tag: string, n: number) =>
    Array.from({ length: n }, (_, i) => ({ instruction: `${tag} question ${i}`, output: `${tag} answer ${i}` }));
  const parquet = (r: { instruction: string; output: string }[]) =>
    Buffer.from(
      parquetWriteBuffer({
        columnData: [
          { name: 'instruction', data: r.map((x) => x.instruction), type: 'STRING' },
          { name: 'output', data: r.map((x) => x.output), type: 'STRING' },
        ],
      }),
    );
  writeFileSync(path.join(repo, 'en', 'train-00000-of-00001.parquet'), parquet(rows('en-train', 5)));
  writeFileSync(path.join(repo, 'en', 'test-00000-of-00001.parquet'), parquet(rows('en-test', 2)));
  writeFileSync(
    path.join(repo, 'zh', 'all.jsonl'),
    rows('zh', 3)
      .map((r) => JSON.stringify(r))
      .join('\n'),
  );
  const server = await startHubServer([{ kind: 'dataset', id: 'acme/mini', dir: repo, commit: 'c'.repeat(40) }]);
  const dataDir = path.join(work, 'data');
  mkdirSync(dataDir);
  writeFileSync(
    path.join(dataDir, 'dataset_info.json'),
    JSON.stringify({
      mini_en: { hf_hub_url: 'acme/mini' },
      mini_zh: { hf_hub_url: 'acme/mini', subset: 'zh' },
      mini_ms: { ms_hub_url: 'acme/mini', file_name: 'x.json' },
    }),
  );
  const model = await makeTinyModelFolder(path.join(work, 'model'));
  const saved = { ...process.env };
  Object.assign(process.env, { HF_ENDPOINT: server.endpoint, HF_HUB_CACHE: path.join(work, 'cache') });
  try {
    const config = (dataset: string) =>
      loadConfig(null, {
        model_name_or_path: model,
        dataset,
        dataset_dir: dataDir,
        template: 'llama2',
        overwrite_cache: true,
      });
    const en = await prepareData(config('mini_en'));
    assert.equal(en.stats.examples, 5);
    assert.equal((await prepareData(config('mini_zh'))).stats.examples, 3);
    const fetched = server.log.filter((r) => r.url.includes('/resolve/') && r.range !== 'bytes=0-0').map((r) => r.url);
    assert.ok(!fetched.some((u) => u.includes('test-00000')), 'the test split is not downloaded');

    process.env.HF_HUB_OFFLINE = '1';
    server.log.length = 0;
    assert.equal((await prepareData(config('mini_en'))).stats.examples, 5);
    assert.equal(server.log.length, 0);
    await assert.rejects(prepareData(config('mini_ms')), (e: LmfError) =>
      /ModelScope is not supported/.test(e.message),
    );
  } finally {
    process.env = saved;
    await server.close();
  }
});

test('dataset_dir REMOTE:<repo> reads dataset_info.json and the files it names from a Hub dataset; ONLINE takes names as ids', async () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-hub-remote-'));
  const repo = path.join(work, 'demo');
  mkdirSync(path.join(repo, 'extra'), { recursive: true });
  writeFileSync(path.join(repo, 'dataset_info.json'), JSON.stringify({ greet: { file_name: 'greet.jsonl' } }));
  const rows = Array.from({ length: 4 }, (_, i) => JSON.stringify({ instruction: `hi ${i}`, output: `hello ${i}` }));
  writeFileSync(path.join(repo, 'greet.jsonl'), rows.join('\n'));
  writeFileSync(path.join(repo, 'extra', 'unrelated.jsonl'), rows.join('\n'));
  const plain = path.join(work, 'plain');
  mkdirSync(plain);
  writeFileSync(path.join(plain, 'train.jsonl'), rows.slice(0, 3).join('\n'));
  const server = await startHubServer([
    { kind: 'dataset', id: 'acme/demo', dir: repo, commit: 'd'.repeat(40) },
    { kind: 'dataset', id: 'acme/plain', dir: plain, commit: 'e'.repeat(40) },
  ]);
  const model = await makeTinyModelFolder(path.join(work, 'model'));
  const saved = { ...process.env };
  Object.assign(process.env, { HF_ENDPOINT: server.endpoint, HF_HUB_CACHE: path.join(work, 'cache') });
  try {
    const common = { model_name_or_path: model, template: 'llama2', overwrite_cache: true };
    const remote = await prepareData(
      loadConfig(null, { ...common, dataset: 'greet', dataset_dir: 'REMOTE:acme/demo' }),
    );
    assert.equal(remote.stats.examples, 4);
    assert.ok(!server.log.some((r) => r.url.includes('unrelated')), 'only the files dataset_info.json names');
    const online = await prepareData(loadConfig(null, { ...common, dataset: 'acme/plain', dataset_dir: 'ONLINE' }));
    assert.equal(online.stats.examples, 3);
  } finally {
    process.env = saved;
    await server.close();
  }
});
