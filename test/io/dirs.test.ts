// Output folders: containment that cannot be fooled by names or dangling links, and one run per folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { contains, lockFolder, realPath, refuseOverlap, LOCK_FILE } from '../../src/io/dirs.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-dirs-'));

test('a child named "..out" lies inside; a sibling does not', () => {
  assert.equal(contains('/a/m', '/a/m/..out'), true);
  assert.equal(contains('/a/m', '/a/m'), true);
  assert.equal(contains('/a/m', '/a/mx'), false);
  assert.equal(contains('/a/m', '/a'), false);
  assert.throws(
    () => refuseOverlap({ key: 'output_dir', path: '/a/m/..out' }, [{ key: 'model_name_or_path', path: '/a/m' }]),
    /lies inside model_name_or_path/,
  );
});

test('a dangling symbolic link is followed to where it points', () => {
  const outside = path.join(work, 'outside', 'not-yet');
  mkdirSync(path.join(work, 'root'));
  symlinkSync(outside, path.join(work, 'root', 'link'));
  assert.equal(realPath(path.join(work, 'root', 'link', 'file')), path.join(outside, 'file'));
});

test('one run per folder: a live holder is refused, a dead one taken over, the lock goes at release', () => {
  const dir = path.join(work, 'out');
  mkdirSync(dir);
  writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ host: os.hostname(), pid: process.ppid }));
  assert.throws(() => lockFolder(dir, 'output_dir'), /another run \(process \d+ on .+\) is writing this folder/);
  writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ host: os.hostname(), pid: 999999999 }));
  const release = lockFolder(dir, 'output_dir');
  assert.equal(JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8')).pid, process.pid);
  assert.throws(() => lockFolder(dir, 'output_dir'), /another run/);
  release();
  assert.equal(existsSync(path.join(dir, LOCK_FILE)), false);
});
