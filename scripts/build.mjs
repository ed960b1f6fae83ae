#!/usr/bin/env node
// Builds what LMFactory runs from, only where it is out of date: `node scripts/build.mjs [native] [ts] [web]`
// (all three by default; --force rebuilds them even when current). npm's install and prepare scripts call it, so an `npm ci`, `npm link`, npx or a
// global install of the tarball never recompiles what is current.
//   native: the addon, rebuilt when binding.gyp, native/, oneDNN's version, node-addon-api, the Node ABI or the presence of
//           Open MPI changed; node-gyp builds in build/, and the result is copied to build/lmf_native.node (and, where
//           Open MPI's mpicc is installed, build/lmf_mpi.node) under a temporary name and renamed, so an interrupted
//           build never leaves a half-written addon where LMFactory loads it.
//   ts:     dist/ from src/ (tsc), when a source is newer than the last build.
//   web:    web/dist/ (vite), likewise.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);

function files(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath ?? e.path, e.name))
    .sort();
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', shell: process.platform === 'win32' });
  if (r.status !== 0) {
    process.stderr.write(`build: ${cmd} ${args.join(' ')} failed${r.error ? `: ${r.error.message}` : ''}\n`);
    process.exit(r.status ?? 1);
  }
}

/** A local tool from node_modules/.bin (absent in an installed package, where ts and web ship built). */
function tool(name) {
  const bin = path.join(root, 'node_modules', '.bin', name);
  return existsSync(bin) ? bin : null;
}

function newestMtime(paths) {
  let newest = 0;
  for (const p of paths.filter((q) => existsSync(q))) {
    for (const f of statSync(p).isDirectory() ? files(p) : [p]) newest = Math.max(newest, statSync(f).mtimeMs);
  }
  return newest;
}

function buildNative() {
  const target = path.join('build', 'lmf_native.node');
  const stampFile = path.join('build', 'lmf_native.stamp');
  const hash = createHash('sha256');
  // the sources, and what else the binary depends on: the oneDNN headers' version, node-addon-api, the Node ABI
  const dnnlVersion = ['/usr/include/oneapi/dnnl/dnnl_version.h', '/usr/include/dnnl_version.h'].filter(existsSync);
  const addonApi = path.join('node_modules', 'node-addon-api', 'package.json');
  for (const f of ['binding.gyp', ...files('native'), ...dnnlVersion, ...(existsSync(addonApi) ? [addonApi] : [])]) {
    hash.update(f).update(readFileSync(f));
  }
  const mpi = spawnSync('mpicc', ['--showme:version'], { encoding: 'utf8' });
  hash.update(
    `${process.versions.modules} ${process.arch} ${process.platform} ${mpi.status === 0 ? mpi.stdout : 'no mpi'}`,
  );
  const stamp = hash.digest('hex');
  const current = existsSync(target) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp;
  if (current && !force) return;
  // the node-gyp npm runs install scripts with, else the copy bundled with npm beside this node, else npm's exec
  const bundled = path.join(
    path.dirname(process.execPath),
    '..',
    'lib',
    'node_modules',
    'npm',
    'node_modules',
    'node-gyp',
    'bin',
    'node-gyp.js',
  );
  const nodeGyp = process.env.npm_config_node_gyp ?? (existsSync(bundled) ? bundled : null);
  const gyp = nodeGyp ? [process.execPath, [nodeGyp]] : ['npm', ['exec', '--yes', '--', 'node-gyp']];
  // outside npm, node-gyp does not see npm's config: where this node's headers are (Debian: nodedir=/usr)
  const nodedir =
    process.env.npm_config_nodedir ??
    spawnSync('npm', ['config', 'get', 'nodedir'], { encoding: 'utf8' }).stdout?.trim();
  const headers = nodedir && nodedir !== 'undefined' && nodedir !== 'null' ? [`--nodedir=${nodedir}`] : [];
  run(gyp[0], [...gyp[1], 'configure', '--loglevel=warn', ...headers]);
  run(gyp[0], [...gyp[1], 'build', '--jobs', 'max', '--loglevel=warn']);
  for (const addon of ['lmf_native.node', 'lmf_mpi.node']) {
    const built = path.join('build', 'Release', addon);
    const into = path.join('build', addon);
    if (!existsSync(built)) {
      rmSync(into, { force: true });
      continue;
    }
    const tmp = `${into}.tmp-${process.pid}`;
    copyFileSync(built, tmp);
    renameSync(tmp, into);
  }
  writeFileSync(stampFile, stamp);
}

function buildTs() {
  const tsc = tool('tsc');
  if (!tsc) return;
  const built = existsSync('dist/cli/main.js') ? statSync('dist/cli/main.js').mtimeMs : 0;
  if (!force && built && newestMtime(['src', 'tsconfig.json', 'package.json']) <= built) return;
  // from scratch: a source deleted or moved must not leave its old output in dist/ (nor in the package)
  rmSync('dist', { recursive: true, force: true });
  run(tsc, ['-p', 'tsconfig.json']);
  // tsc may leave an unchanged output's time alone: mark the build as done now
  const now = new Date();
  utimesSync('dist/cli/main.js', now, now);
}

function buildWeb() {
  const vite = tool('vite');
  if (!vite) return;
  const marker = path.join('web', 'dist', 'index.html');
  const inputs = [
    'web/src',
    'web/index.html',
    'web/vite.config.ts',
    'web/tsconfig.json',
    'src/wire.ts',
    'package-lock.json',
  ];
  if (!force && existsSync(marker) && newestMtime(inputs) <= statSync(marker).mtimeMs) return;
  run(vite, ['build', 'web', '--logLevel', 'warn']);
}

const steps = { native: buildNative, ts: buildTs, web: buildWeb };
// --force rebuilds the steps asked for even when they look current
const force = process.argv.includes('--force');
const asked = process.argv.slice(2).filter((a) => a !== '--force');
for (const name of asked.length ? asked : Object.keys(steps)) {
  if (!steps[name]) {
    process.stderr.write(`build: unknown step ${name} (native, ts, web)\n`);
    process.exit(2);
  }
  steps[name]();
}
