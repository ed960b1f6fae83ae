// Lint rules that encode what the code must never do. Run by scripts/test.sh (CI) through `npx eslint`.
import tseslint from 'typescript-eslint';

// Spreading an array into call arguments puts every element on the stack: a long one (a 1 MB row's tokens,
// a million rows, a 152k vocabulary) throws "Maximum call stack size exceeded". Loops or concat instead.
const spreadIntoCall = 'Spreading an array into call arguments overflows the stack when the array is long: use a loop (src/util/arrays.ts)';

export default tseslint.config(
  { ignores: ['dist/**', 'web/dist/**', 'build/**', 'node_modules/**'] },
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', 'web/src/**/*.{ts,tsx}'],
    languageOptions: { parser: tseslint.parser },
    rules: {
      'no-restricted-syntax': ['error',
        { selector: "CallExpression[callee.property.name=/^(push|unshift|splice)$/] > SpreadElement", message: spreadIntoCall },
        { selector: "CallExpression[callee.object.name='Math'] > SpreadElement", message: spreadIntoCall },
        { selector: "CallExpression[callee.object.name='String'][callee.property.name='fromCharCode'] > SpreadElement", message: spreadIntoCall },
      ],
    },
  },
);
