// Lint rules that encode what the code must never do. Run by scripts/test.sh (CI) through `npx eslint .`.
import tseslint from 'typescript-eslint';

// Spreading an array into call arguments puts every element on the stack: a long one (a 1 MB row's tokens,
// a million rows, a 152k vocabulary) throws "Maximum call stack size exceeded". Loops or concat instead.
const spreadIntoCall =
  'Spreading an array into call arguments overflows the stack when the array is long: use a loop (src/util/arrays.ts)';

// The layers of src/, each with the folders (or top-level modules) it may import; imports only go downward.
// errors, version and util may be imported from anywhere; cli sits on top and may import everything.
const layers = {
  util: [],
  native: [],
  threads: ['native'],
  tensor: ['native'],
  io: ['native', 'tensor'],
  nn: ['tensor'],
  config: [],
  models: ['native', 'tensor', 'io', 'nn'],
  adapters: ['native', 'tensor', 'io', 'nn', 'models'],
  data: ['tensor', 'io', 'config'],
  infer: ['native', 'threads', 'tensor', 'io', 'models', 'adapters', 'config', 'data'],
  distributed: [],
  train: ['native', 'threads', 'tensor', 'io', 'nn', 'models', 'adapters', 'config', 'data', 'distributed'],
  export: ['native', 'tensor', 'io', 'models', 'config', 'infer'],
  eval: ['tensor', 'io', 'config', 'data', 'infer'],
  // verify replays the reference's training steps with the trainer's optimizer
  verify: ['native', 'tensor', 'io', 'models', 'adapters', 'train'],
  api: ['config', 'data', 'infer'],
  bench: ['native', 'threads', 'tensor', 'io', 'models', 'adapters', 'config', 'data', 'infer', 'train', 'distributed'],
  webui: ['io', 'models', 'config', 'data', 'wire'],
};
const everywhere = ['errors', 'version', 'util', 'wire'];
/** top-level modules of src/ (src/native.ts …), imported as ../native.js or ../../native.js */
const modules = new Set(['native', 'threads', 'wire']);
const all = [...new Set([...Object.keys(layers), 'cli', 'wire'])];

/** no-restricted-imports patterns that forbid every src folder (or top-level module) a layer may not import. */
function boundaries(layer) {
  const allowed = new Set([layer, ...layers[layer], ...everywhere]);
  return all
    .filter((f) => !allowed.has(f))
    .map((f) => ({
      group: modules.has(f) ? [`../${f}.js`, `../../${f}.js`, `../../../${f}.js`] : [`**/${f}/*`],
      message: `src/${layer} may import only ${[...layers[layer], ...everywhere].join(', ')}: ${f} is above it or beside it`,
    }));
}

export default tseslint.config(
  { ignores: ['dist/**', 'web/dist/**', 'build/**', 'node_modules/**'] },
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', 'web/src/**/*.{ts,tsx}'],
    languageOptions: { parser: tseslint.parser },
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: 'CallExpression[callee.property.name=/^(push|unshift|splice)$/] > SpreadElement',
          message: spreadIntoCall,
        },
        { selector: "CallExpression[callee.object.name='Math'] > SpreadElement", message: spreadIntoCall },
        {
          selector: "CallExpression[callee.object.name='String'][callee.property.name='fromCharCode'] > SpreadElement",
          message: spreadIntoCall,
        },
      ],
    },
  },
  ...Object.keys(layers).map((layer) => ({
    files: modules.has(layer) ? [`src/${layer}.ts`] : [`src/${layer}/**/*.ts`],
    rules: { 'no-restricted-imports': ['error', { patterns: boundaries(layer) }] },
  })),
  {
    // the page is built by vite without Node: it shares only the wire types with the server
    files: ['web/src/**/*.{ts,tsx}'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/src/*', '!**/src/wire.js', '!**/src/wire'],
              message: 'web/src may import only src/wire.ts from the server side',
            },
          ],
        },
      ],
    },
  },
);
