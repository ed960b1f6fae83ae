#!/usr/bin/env node
// Entry point of the `lmf` command: runs the compiled CLI (npm ci builds it into dist/).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
// --version answers before any module of the CLI loads (shell prompts and scripts call it often)
if (process.argv.length === 3 && (process.argv[2] === '--version' || process.argv[2] === '-V')) {
  process.stdout.write(`${JSON.parse(readFileSync(path.join(here, '..', 'package.json'), 'utf8')).version}\n`);
  process.exit(0);
}
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
