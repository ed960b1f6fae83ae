#!/usr/bin/env node
// Entry point of the `lmf` command: runs the compiled CLI (npm ci builds it into dist/).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const entry = path.join(here, '..', 'dist', 'cli', 'main.js');
if (!existsSync(entry)) {
  process.stderr.write('error: LMFactory is not built (dist/ is missing)\n  hint: run `npm ci` or `npm run build` in the project folder\n');
  process.exit(1);
}
const { main } = await import(entry);
await main(process.argv);
