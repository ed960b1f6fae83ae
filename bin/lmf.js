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
let main;
try {
  ({ main } = await import(entry));
} catch (err) {
  // a failure while loading (a missing or mismatched native addon) is one clear line, not a stack trace
  process.stderr.write(`${typeof err.format === 'function' ? err.format() : `error: ${err.message}`}\n`);
  process.exit(1);
}
await main(process.argv);
