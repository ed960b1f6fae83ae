// Broken model folders and weight files stop with an LmfError that names the file and the tensor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { LmfError } from '../../src/errors.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { loadModel } from '../../src/models/registry.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { tinyDir, lmfEntry } from '../helpers.js';

function tinyCopy(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lmf-bad-'));
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(path.join(tinyDir, 'model', f), path.join(dir, f));
  return dir;
}

function expectLmfError(
  fn: () => unknown,
  code: string,
  pattern: RegExp,
  context: Partial<Record<'file' | 'tensor' | 'key', RegExp>> = {},
): void {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof LmfError, `expected an LmfError, got ${err}`);
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    for (const [k, re] of Object.entries(context)) assert.match(String(err.context[k as 'file']), re!);
    return;
  }
  assert.fail('no error was thrown');
}

test('a truncated safetensors file names the file and the tensor that does not fit', () => {
  const dir = tinyCopy();
  const file = path.join(dir, 'model.safetensors');
  truncateSync(file, Math.floor(readFileSync(file).length * 0.8));
  expectLmfError(() => loadModel(dir), 'bad_safetensors', /file has only \d+ bytes/, {
    file: /model\.safetensors$/,
    tensor: /./,
  });
  rmSync(dir, { recursive: true });
});

test('a corrupt header (bad JSON, absurd length) is reported, not thrown as a raw error', () => {
  const dir = tinyCopy();
  const file = path.join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  bytes[8] = 0x00; // the header's opening brace
  writeFileSync(file, bytes);
  expectLmfError(() => loadModel(dir), 'bad_safetensors', /not valid JSON/, { file: /model\.safetensors$/ });
  const huge = Buffer.alloc(16);
  huge.writeBigUInt64LE(1n << 40n);
  writeFileSync(file, huge);
  expectLmfError(() => SafetensorsFile.open(file), 'bad_safetensors', /header claims/);
  rmSync(dir, { recursive: true });
});

test('a missing tensor and a wrong shape name the tensor', () => {
  const dir = tinyCopy();
  const file = path.join(dir, 'model.safetensors');
  const st = SafetensorsFile.open(path.join(tinyDir, 'model', 'model.safetensors'));
  const tensors = new Map(
    [...st.entries.keys()]
      .filter((n) => n !== 'model.layers.1.mlp.up_proj.weight')
      .map((n) => [n, { tensor: st.read(n, 'f32'), dtype: 'F32' as const }]),
  );
  writeSafetensors(file, tensors);
  expectLmfError(() => loadModel(dir), 'missing_tensor', /no such tensor/, {
    tensor: /layers\.1\.mlp\.up_proj\.weight/,
  });
  tensors.set('model.layers.1.mlp.up_proj.weight', { tensor: Tensor.zeros([160, 32], 'f32'), dtype: 'F32' });
  writeSafetensors(file, tensors);
  expectLmfError(() => loadModel(dir), 'shape_mismatch', /\[160,32\] in the file, \[160,64\] expected/, {
    tensor: /up_proj/,
  });
  st.close();
  rmSync(dir, { recursive: true });
});

test('config.json problems: missing, unsupported model_type, inconsistent heads', () => {
  const dir = tinyCopy();
  const cfgFile = path.join(dir, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  writeFileSync(cfgFile, JSON.stringify({ ...cfg, model_type: 'gpt2' }));
  expectLmfError(() => loadModel(dir), 'bad_model_config', /model_type "gpt2" is not supported/, { key: /model_type/ });
  writeFileSync(cfgFile, JSON.stringify({ ...cfg, num_key_value_heads: 3 }));
  expectLmfError(() => loadModel(dir), 'bad_model_config', /not a multiple/, { key: /num_key_value_heads/ });
  rmSync(cfgFile);
  expectLmfError(() => loadModel(dir), 'model_missing', /config\.json not found/);
  rmSync(dir, { recursive: true });
});

test('the CLI prints the problem in plain words and exits non-zero, without a stack trace', () => {
  const dir = tinyCopy();
  truncateSync(path.join(dir, 'model.safetensors'), 1000);
  const r = spawnSync(
    process.execPath,
    [...lmfEntry(), 'verify', '--model', dir, '--golden', path.join(tinyDir, 'golden.safetensors')],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 1);
  assert.match(r.stderr, /error \[bad_safetensors\] .*model\.safetensors/);
  assert.match(r.stderr, /hint: /);
  assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/);
  rmSync(dir, { recursive: true });
});
