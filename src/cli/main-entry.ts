/** Runs the CLI from TypeScript sources (tests, development): `node --import tsx src/cli/main-entry.ts …`. */
import { main } from './main.js';

await main(process.argv);
