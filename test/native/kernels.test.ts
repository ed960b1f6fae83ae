// The kernels of every instruction-set path against scalar references, through scripts/test-kernels.sh:
// every x86-64 path (natively, or on SIMDe's emulation where this CPU lacks its instructions), and cross-compiled
// for arm64 and run under qemu-user.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

for (const target of ['x86', 'arm64']) {
  test(`kernels on ${target} match the scalar references`, () => {
    const r = spawnSync('bash', ['scripts/test-kernels.sh', target], { encoding: 'utf8', timeout: 600_000 });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const totals = [...r.stdout.matchAll(/^(\d+) passed, (\d+) failed$/gm)];
    assert.ok(totals.length >= 1, r.stdout);
    for (const [, ok, bad] of totals) {
      assert.equal(Number(bad), 0, r.stdout);
      assert.ok(Number(ok) >= 23, r.stdout);
    }
    if (target === 'arm64') assert.equal(totals.length, 2, 'both qemu CPUs ran');
    if (target === 'x86')
      for (const path of ['avx2', 'avx512', 'avx512bf16'])
        assert.match(r.stdout, new RegExp(`^ok {3}${path} gemv f32 `, 'm'), `the ${path} path ran`);
  });
}
