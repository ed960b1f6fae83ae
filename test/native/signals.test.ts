// Signals during oneDNN products (native/src/signal_shield.h): oneDNN 2.x's generated f32 GEMM kernels move the
// stack pointer into the heap, where a signal's frame used to land. Before the shield, a CPU profiler's SIGPROF
// (`node --cpu-prof`, every 100 µs here) aborted such a process within seconds on a corrupted heap or crashed it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

test("products stay exact and the process alive under a CPU profiler's SIGPROF", () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lmf-cpuprof-'));
  try {
    const child = path.join(import.meta.dirname, 'products-under-signals.ts');
    const flags = ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '100', '--import', 'tsx'];
    const run = spawnSync(process.execPath, [...flags, child, '2500'], { encoding: 'utf8' });
    const output = run.stdout + run.stderr;
    assert.equal(run.signal, null, `the child died of ${run.signal}: ${output}`);
    assert.equal(run.status, 0, output);
    const { iterations, differing } = JSON.parse(run.stdout.trim()) as Record<string, number>;
    assert.ok(iterations > 10, output);
    assert.equal(differing, 0, 'a product changed while the profiler sampled');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
