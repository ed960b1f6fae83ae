// `lmf` as npm users get it: the packed tarball installed into a fresh prefix (its addon built at install,
// dist/ and web/dist/ shipped) runs from that prefix's bin/; and the completion script completes real words.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tinyDir, lmfEntry } from '../helpers.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-install-'));
after(() => rmSync(work, { recursive: true, force: true }));

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, timeout: 600_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
  return r;
}

test('the packed tarball installs into a prefix and runs lmf --version, env and verify from there', () => {
  run('npm', ['pack', '--silent', '--pack-destination', work]);
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  assert.ok(tarball, 'npm pack wrote a tarball');
  const prefix = path.join(work, 'prefix');
  run('npm', [
    'install',
    '--global',
    '--prefix',
    prefix,
    '--prefer-offline',
    '--no-audit',
    '--no-fund',
    '--loglevel=error',
    path.join(work, tarball),
  ]);
  const installed = path.join(prefix, 'lib', 'node_modules', 'lmfactory');
  for (const f of ['build/lmf_native.node', 'dist/cli/main.js', 'web/dist/index.html'])
    assert.ok(existsSync(path.join(installed, f)), f);
  const lmf = path.join(prefix, 'bin', 'lmf');
  const env = { ...process.env, PATH: `${path.join(prefix, 'bin')}:${process.env.PATH}` };
  assert.match(run(lmf, ['--version'], env).stdout, /^\d+\.\d+\.\d+\n$/);
  assert.match(run(lmf, ['env'], env).stdout, /"isa": "avx/);
  const verify = run(
    lmf,
    ['verify', '--model', path.join(tinyDir, 'model'), '--golden', path.join(tinyDir, 'golden.safetensors')],
    env,
  );
  assert.match(verify.stderr, /verify: \d+ tensors within tolerance/);
});

test('lmf completion bash completes commands, subcommands, options and config keys', () => {
  const script = run(process.execPath, [...lmfEntry(), 'completion', 'bash']).stdout;
  const complete = (...words: string[]) =>
    run('bash', [
      '-c',
      `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _lmf_completion; echo "\${COMPREPLY[*]}"`,
    ]).stdout.trim();
  assert.equal(complete('lmf', 'tr'), 'train');
  assert.equal(complete('lmf', 'data', 'ch'), 'check');
  assert.equal(complete('lmf', 'train', 'x.yaml', 'learning_r'), 'learning_rate=');
  assert.equal(complete('lmf', 'train', '--learning_r'), '--learning_rate');
  assert.equal(complete('lmf', 'data', 'check', 'x.yaml', 'cutoff'), 'cutoff_len=');
  assert.equal(complete('lmf', 'bench', '--mo'), '--model --mode');
  const bad = spawnSync(process.execPath, [...lmfEntry(), 'completion', 'fish'], {
    encoding: 'utf8',
  });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /error \[bad_option\] no completion for shell "fish"/);
});
