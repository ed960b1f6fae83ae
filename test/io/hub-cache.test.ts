// Hub ids resolve in a Hugging Face cache laid out as huggingface_hub lays it out (refs/<revision> naming a
// commit, snapshots/<commit>/), by HF_HUB_CACHE or HF_HOME; a local folder wins; an id not cached is one
// error naming the id and the folders searched. Through `lmf data check` as a user runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hubCacheDirs } from '../../src/io/hub-cache.js';
import { resolveHubPath } from '../../src/io/hub-download.js';
import { makeTinyModelFolder, lmfEntry } from '../helpers.js';

test('org/name resolves to the cached snapshot of its revision; HF_HUB_CACHE, then HF_HOME/hub', async () => {
  const home = mkdtempSync(path.join(os.tmpdir(), 'lmf-hf-'));
  const cache = path.join(home, 'hub');
  const repo = path.join(cache, 'models--acme--tiny-llama');
  mkdirSync(path.join(repo, 'refs'), { recursive: true });
  writeFileSync(path.join(repo, 'refs', 'main'), 'c0ffee\n');
  writeFileSync(path.join(repo, 'refs', 'v2'), 'beef01');
  await makeTinyModelFolder(path.join(repo, 'snapshots', 'c0ffee'));
  mkdirSync(path.join(repo, 'snapshots', 'beef01'), { recursive: true });

  assert.deepEqual(hubCacheDirs({ HF_HOME: home }), [cache]);
  assert.deepEqual(hubCacheDirs({ HF_HUB_CACHE: '/x' }), ['/x']);
  const env = { HF_HOME: home, HF_HUB_OFFLINE: '1' };
  const resolve = (id: string, revision: string) => resolveHubPath(id, { revision, env });
  assert.equal(await resolve('acme/tiny-llama', 'main'), path.join(repo, 'snapshots', 'c0ffee'));
  assert.equal(await resolve('acme/tiny-llama', 'v2'), path.join(repo, 'snapshots', 'beef01'));
  assert.equal(await resolve('acme/tiny-llama', 'beef01'), path.join(repo, 'snapshots', 'beef01'));
  assert.equal(await resolve(home, 'main'), home); // a folder is itself
  await assert.rejects(
    resolve('acme/missing', 'main'),
    (e: Error & { context?: { hint?: string } }) =>
      /"acme\/missing" \(revision main\) is neither a folder nor in the Hugging Face cache/.test(e.message) &&
      (e.context?.hint ?? '').includes(path.join(cache, 'models--acme--missing')),
  );

  const r = spawnSync(process.execPath, [...lmfEntry(), 'data', 'check'], {
    encoding: 'utf8',
    env: { ...process.env, HF_HUB_CACHE: cache },
  });
  assert.notEqual(r.status, 0); // no settings at all: model_name_or_path is required
  const ok = spawnSync(
    process.execPath,
    [
      ...lmfEntry(),
      'data',
      'check',
      '--model_name_or_path',
      'acme/tiny-llama',
      '--dataset',
      'identity',
      '--template',
      'llama2',
    ],
    { encoding: 'utf8', env: { ...process.env, HF_HUB_CACHE: cache } },
  );
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /examples kept: \d+/);
});
