// Run by signals.test.ts in a child process under a CPU profiler: oneDNN products (f32, and bf16 operands)
// repeated for the given milliseconds, each result compared with the first. Prints
// {"iterations": n, "differing": d} and exits 0.
import { native } from '../../src/native.js';

const [M, N, K] = [128, 1536, 576];
const a = Float32Array.from({ length: M * K }, (_, i) => ((i % 7) - 3) * 0.01);
const b = Float32Array.from({ length: N * K }, (_, i) => ((i % 5) - 2) * 0.1);
const aBf16 = new Uint16Array(M * K);
const bBf16 = new Uint16Array(N * K);
native.toBf16(a, aBf16, a.length);
native.toBf16(b, bBf16, b.length);
const out = new Float32Array(M * N);
const products = [
  () => native.matmul(a, b, out, M, N, K, false, true, false, null, 0),
  () => native.matmul(aBf16, bBf16, out, M, N, K, false, true, false, null, 1),
];
const expected = products.map((run) => {
  run();
  return out.slice();
});
const until = Date.now() + Number(process.argv[2]);
let iterations = 0;
let differing = 0;
while (Date.now() < until) {
  const p = iterations++ % products.length;
  products[p]();
  if (out.some((v, i) => v !== expected[p][i])) differing++;
}
process.stdout.write(JSON.stringify({ iterations, differing }) + '\n');
process.exit(0);
