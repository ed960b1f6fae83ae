// Downloading from the Hub with the real client code against a Hub on loopback (test/io/hub-server.ts): the
// cache layout huggingface_hub writes, only the files a model needs, a dropped connection and a killed run both
// resumed with a Range request, a gated repository (401, then HF_TOKEN), HF_HUB_OFFLINE, and `lmf` resolving a
// Hub id on its command line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LmfError } from '../../src/errors.js';
import { resolveHubPath } from '../../src/io/hub-download.js';
import { loadModel } from '../../src/models/registry.js';
import { makeTinyModelFolder, lmfEntry } from '../helpers.js';
import { startHubServer, type HubServer } from './hub-server.js';

const commit = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
const quiet = () => undefined;

async function modelRepo(dir: string): Promise<string> {
  await makeTinyModelFolder(dir);
  writeFileSync(path.join(dir, 'README.md'), '# tiny\n');
  writeFileSync(path.join(dir, 'pytorch_model.bin'), 'not read');
  mkdirSync(path.join(dir, 'onnx'));
  writeFileSync(path.join(dir, 'onnx', 'model.onnx'), 'not read');
  return dir;
}

function fetched(server: HubServer): string[] {
  return server.log.filter((r) => r.url.includes('/resolve/')).map((r) => r.url.split('/resolve/')[1].slice(41));
}

test('a Hub id downloads into the Hugging Face cache layout, only the files a model needs; the next run uses the cache', async () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-hub-'));
  const repoDir = await modelRepo(path.join(work, 'repo'));
  const server = await startHubServer([{ kind: 'model', id: 'acme/tiny', dir: repoDir, commit }]);
  try {
    const env = { HF_ENDPOINT: server.endpoint, HF_HUB_CACHE: path.join(work, 'cache') };
    const snapshot = await resolveHubPath('acme/tiny', { env, print: quiet });
    const repo = path.join(work, 'cache', 'models--acme--tiny');
    assert.equal(snapshot, path.join(repo, 'snapshots', commit));
    assert.equal(readFileSync(path.join(repo, 'refs', 'main'), 'utf8'), commit);
    const weights = readFileSync(path.join(repoDir, 'model.safetensors'));
    const link = readlinkSync(path.join(snapshot, 'model.safetensors'));
    assert.equal(link, path.join('..', '..', 'blobs', createHash('sha256').update(weights).digest('hex')));
    assert.deepEqual(readFileSync(path.join(snapshot, 'model.safetensors')), weights);
    assert.deepEqual(
      new Set(fetched(server)),
      new Set(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']),
    );
    loadModel(snapshot).model.dispose();

    const requests = server.log.length;
    assert.equal(await resolveHubPath('acme/tiny', { env, print: quiet }), snapshot);
    assert.equal(server.log.length, requests, 'a cached snapshot needs no request');
  } finally {
    await server.close();
  }
});

test('a connection dropped mid-file and a partial blob from a killed run both resume with a Range request', async () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-hub-resume-'));
  const repoDir = await modelRepo(path.join(work, 'repo'));
  const server = await startHubServer([{ kind: 'model', id: 'acme/tiny', dir: repoDir, commit }]);
  try {
    const weights = readFileSync(path.join(repoDir, 'model.safetensors'));
    const etag = createHash('sha256').update(weights).digest('hex');
    server.dropOnce.add('model.safetensors');
    const lines: string[] = [];
    const env = { HF_ENDPOINT: server.endpoint, HF_HUB_CACHE: path.join(work, 'cache') };
    const snapshot = await resolveHubPath('acme/tiny', { env, print: (l) => lines.push(l) });
    assert.deepEqual(readFileSync(path.join(snapshot, 'model.safetensors')), weights);
    const ranged = server.log.filter((r) => r.url.endsWith('model.safetensors') && r.range && r.range !== 'bytes=0-0');
    assert.equal(ranged.length, 1);
    // the rest from what arrived before the cut (at most the half the server sent)
    const from = Number(/^bytes=(\d+)-(\d+)$/.exec(ranged[0].range!)?.[1]);
    assert.ok(from > 0 && from <= weights.length >> 1, ranged[0].range);
    assert.ok(ranged[0].range!.endsWith(`-${weights.length - 1}`));
    assert.ok(lines.some((l) => /resuming/.test(l)) && lines.some((l) => /100%/.test(l)), lines.join('\n'));

    // a killed run left the first 1000 bytes: the next run asks for the rest only
    const cache2 = path.join(work, 'cache2');
    const blobs = path.join(cache2, 'models--acme--tiny', 'blobs');
    mkdirSync(blobs, { recursive: true });
    writeFileSync(path.join(blobs, `${etag}.incomplete`), weights.subarray(0, 1000));
    server.log.length = 0;
    const again = await resolveHubPath('acme/tiny', { env: { ...env, HF_HUB_CACHE: cache2 }, print: quiet });
    assert.deepEqual(readFileSync(path.join(again, 'model.safetensors')), weights);
    assert.ok(
      server.log.some((r) => r.url.endsWith('model.safetensors') && r.range === `bytes=1000-${weights.length - 1}`),
    );
  } finally {
    await server.close();
  }
});

test('a gated repository: 401 names HF_TOKEN; the token opens it; HF_HUB_OFFLINE never touches the network', async () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-hub-gated-'));
  const repoDir = await modelRepo(path.join(work, 'repo'));
  const server = await startHubServer([
    { kind: 'model', id: 'acme/gated', dir: repoDir, commit, token: 'hf_opensesame' },
  ]);
  try {
    const env = { HF_ENDPOINT: server.endpoint, HF_HUB_CACHE: path.join(work, 'cache'), HOME: work };
    await assert.rejects(resolveHubPath('acme/gated', { env, print: quiet }), (e: LmfError) => {
      assert.equal(e.code, 'hub_access');
      assert.match(
        e.message,
        /model acme\/gated \(revision main\) at http:\/\/127\.0\.0\.1:\d+: access refused \(HTTP 401\)/,
      );
      assert.match(e.context.hint ?? '', /set HF_TOKEN/);
      return true;
    });
    await assert.rejects(
      resolveHubPath('acme/nothing', { env, print: quiet }),
      (e: LmfError) => e.code === 'hub_not_found',
    );

    const offline = { ...env, HF_HUB_OFFLINE: '1', HF_TOKEN: 'hf_opensesame' };
    server.log.length = 0;
    await assert.rejects(resolveHubPath('acme/gated', { env: offline, print: quiet }), (e: LmfError) => {
      assert.match(e.message, /HF_HUB_OFFLINE is set/);
      assert.ok((e.context.hint ?? '').includes(path.join(work, 'cache', 'models--acme--gated')));
      return true;
    });
    assert.equal(server.log.length, 0);

    const snapshot = await resolveHubPath('acme/gated', { env: { ...env, HF_TOKEN: 'hf_opensesame' }, print: quiet });
    assert.ok(readFileSync(path.join(snapshot, 'config.json'), 'utf8').includes('llama'));
  } finally {
    await server.close();
  }
});

test('lmf resolves a Hub id on its command line by downloading it (HF_ENDPOINT), with progress on stderr', async () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-hub-cli-'));
  const repoDir = await modelRepo(path.join(work, 'repo'));
  const server = await startHubServer([{ kind: 'model', id: 'acme/tiny', dir: repoDir, commit }]);
  try {
    const args = [...lmfEntry(), 'data', 'check', '--model_name_or_path', 'acme/tiny'];
    const child = spawn(process.execPath, [...args, '--dataset', 'identity', '--template', 'llama2'], {
      env: { ...process.env, HF_ENDPOINT: server.endpoint, HF_HUB_CACHE: path.join(work, 'cache') },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const status = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(status, 0, stderr);
    assert.match(stderr, /downloading model\.safetensors: .*\(100%\)/);
    assert.match(stdout, /examples kept: \d+/);
  } finally {
    await server.close();
  }
});
