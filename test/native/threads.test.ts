// Kernel threads on a shared machine (src/threads.ts): beside a process that keeps one of our CPUs busy the
// count drops by one, and comes back when it ends; a matmul gives the same products at either count (oneDNN
// primitives are made per thread count).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { native } from '../../src/native.js';
import { adaptThreads, onWholeBudget, usableCpus } from '../../src/threads.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cpus = usableCpus();

test('usable CPUs: within the affinity and any cgroup quota', () => {
  assert.ok(cpus >= 1 && cpus <= availableParallelism());
});

test(
  'a busy neighbour costs a thread, and its end gives it back',
  { skip: cpus < 2 || process.env.OMP_NUM_THREADS ? 'needs two CPUs and no OMP_NUM_THREADS' : false },
  async () => {
    adaptThreads();
    await sleep(600);
    adaptThreads();
    assert.equal(native.threads(), cpus, 'alone: every usable CPU');
    const busy = spawn(process.execPath, ['-e', 'for (;;);'], { stdio: 'ignore' });
    try {
      await sleep(300);
      adaptThreads(); // the window so far
      await sleep(600);
      adaptThreads();
      assert.equal(native.threads(), cpus - 1, 'beside a busy process');
    } finally {
      busy.kill('SIGKILL');
    }
    await sleep(300);
    adaptThreads();
    await sleep(600);
    adaptThreads();
    assert.equal(native.threads(), cpus, 'alone again');
  },
);

test('a matmul gives the same products on one thread as on all of them', () => {
  const [M, N, K] = [64, 96, 128];
  const a = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i));
  const b = Float32Array.from({ length: N * K }, (_, i) => Math.cos(i));
  const run = (threads: number) => {
    native.threads(threads);
    const out = new Float32Array(M * N);
    native.matmul(a, b, out, M, N, K, false, true, false, null, 0);
    return out;
  };
  const all = run(cpus);
  const one = run(1);
  assert.ok(
    one.every((v, i) => Math.abs(v - all[i]) <= 1e-5 * Math.abs(all[i]) + 1e-5),
    'the same products',
  );
  native.threads(cpus);
});

test(
  'a peak is measured on the whole budget, whatever share adaptThreads left, and the share is restored',
  { skip: cpus < 2 || process.env.OMP_NUM_THREADS ? 'needs two CPUs and no OMP_NUM_THREADS' : false },
  () => {
    native.threads(1); // the share beside a busy neighbour
    assert.equal(
      onWholeBudget(() => native.threads()),
      cpus,
    );
    assert.equal(native.threads(), 1);
    native.threads(cpus);
  },
);
