// The README's map names every file of the folders it lists, and only files that exist: it cannot drift.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const readme = readFileSync('README.md', 'utf8');
const map = readme.slice(readme.indexOf('## Map'), readme.indexOf('## Design notes'));
const rows = [...map.matchAll(/^\| `([^`]+\/)` \| (.*) \|$/gm)].map(([, folder, text]) => ({ folder, text }));
/** A backticked file or subfolder name: `name.ext` or `name/` (not `Tensor`, `lmf api`, `isa/*.cc` …). */
const named = (text: string) =>
  new Set([...text.matchAll(/`([\w.-]+(?:\.(?:ts|tsx|cc|c|h|mjs|sh|py)|\/))`/g)].map((m) => m[1]));

test('every folder the map lists matches its files, and every source folder is listed', () => {
  assert.ok(rows.length > 10, 'the map has rows');
  for (const { folder, text } of rows.filter((r) => r.folder !== 'test/')) {
    const entries = readdirSync(folder)
      .filter((e) => !e.startsWith('.'))
      .map((e) => (statSync(path.join(folder, e)).isDirectory() ? `${e}/` : e));
    const names = named(text);
    // a subfolder with a row of its own need not be named in its parent's row
    const missing = entries.filter(
      (e) => !names.has(e) && !(e.endsWith('/') && rows.some((r) => r.folder === `${folder}${e}`)),
    );
    const extra = [...names].filter((n) => !entries.includes(n));
    assert.deepEqual(missing, [], `${folder}: files the map does not name`);
    assert.deepEqual(extra, [], `${folder}: names in the map that are not there`);
  }
  const listed = new Set(rows.map((r) => r.folder));
  const folders = (dir: string): string[] =>
    readdirSync(dir)
      .filter((e) => statSync(path.join(dir, e)).isDirectory())
      .flatMap((e) => [`${dir}/${e}/`, ...folders(`${dir}/${e}`)]);
  for (const f of [
    'src/',
    'native/src/',
    'native/mpi/',
    'native/test/',
    'scripts/',
    'bench/',
    ...folders('src'),
    ...folders('native/src'),
  ])
    assert.ok(listed.has(f), `${f} has no row in the map`);
});
