// Output folders: containment that cannot be fooled by names or dangling links, and one run per folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { alive, contains, lockFolder, realPath, refuseOverlap, LOCK_FILE } from '../../src/io/dirs.js';

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

test('one run per folder: a live holder is refused, a dead one (or one whose id was reused) taken over, the lock goes at release', () => {
  const dir = path.join(work, 'out');
  mkdirSync(dir);
  writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ host: os.hostname(), pid: process.ppid }));
  assert.throws(() => lockFolder(dir, 'output_dir'), /another run \(process \d+ on .+\) is writing this folder/);
  writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ host: os.hostname(), pid: 999999999 }));
  let release = lockFolder(dir, 'output_dir');
  const mine = JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8'));
  release();
  if (process.platform === 'linux') {
    // a live process of that id, started at another time than the lock says: the id was given to another process
    assert.match(mine.started, /^\d+$/);
    const parentLock = {
      host: os.hostname(),
      pid: process.ppid,
      started: readFileSync(`/proc/${process.ppid}/stat`, 'utf8').split(') ')[1].split(' ')[19],
    };
    writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify(parentLock));
    assert.throws(() => lockFolder(dir, 'output_dir'), /another run \(process \d+ on .+\) is writing this folder/);
    writeFileSync(
      path.join(dir, LOCK_FILE),
      JSON.stringify({ ...parentLock, started: String(Number(parentLock.started) + 1) }),
    );
    lockFolder(dir, 'output_dir')();
  }
  release = lockFolder(dir, 'output_dir');
  assert.equal(JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8')).pid, process.pid);
  assert.throws(() => lockFolder(dir, 'output_dir'), /another run/);
  release();
  assert.equal(existsSync(path.join(dir, LOCK_FILE)), false);
});

test(
  'a lock held by a zombie (exited, not yet reaped) is taken over',
  { skip: process.platform !== 'linux' },
  async () => {
    // perl forks a child that exits at once and never reaps it (no SIGCHLD handler, unlike some shells): the child
    // stays a zombie while perl sleeps
    const parent = spawn('perl', ['-e', '$| = 1; my $p = fork(); exit 0 if $p == 0; print "$p\n"; sleep 30'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      const zombie = await new Promise<number>((resolve) =>
        parent.stdout.once('data', (d: Buffer) => resolve(Number(d))),
      );
      const state = () => readFileSync(`/proc/${zombie}/stat`, 'utf8').split(') ')[1][0];
      for (let i = 0; i < 500 && state() !== 'Z'; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(state(), 'Z');
      assert.equal(alive(zombie), false);
      assert.equal(alive(parent.pid!), true);
      const dir = path.join(work, 'zombie-held');
      mkdirSync(dir);
      writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ host: os.hostname(), pid: zombie }));
      lockFolder(dir, 'output_dir')();
    } finally {
      parent.kill('SIGKILL');
    }
  },
);
