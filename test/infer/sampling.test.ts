// The native sampler against a plain reference: the kept set of top-k and top-p (Hugging Face's order: score, then
// id), each kept token's share of the draw, the repetition penalty, and determinism.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { native } from '../../src/native.js';
import { Rng } from '../../src/tensor/random.js';

/**
 * The reference: sort every token, keep top-k (with every token tying the k-th score, as transformers does), then
 * the smallest prefix reaching top-p; weights exp((s - max) / T).
 */
function reference(scores: Float32Array, T: number, topK: number, topP: number): Map<number, number> {
  const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b);
  const kept = topK > 0 ? order.filter((v) => scores[v] >= scores[order[Math.min(topK, order.length) - 1]]) : order;
  const best = scores[order[0]];
  const w = kept.map((v) => Math.exp((scores[v] - best) / T));
  const total = w.reduce((a, x) => a + x, 0);
  let n = kept.length;
  if (topP < 1) {
    let mass = 0;
    for (let i = 0; i < kept.length; i++) {
      mass += w[i] / total;
      if (mass >= topP) {
        n = i + 1;
        break;
      }
    }
  }
  const mass = w.slice(0, n).reduce((a, x) => a + x, 0);
  return new Map(kept.slice(0, n).map((v, i) => [v, w[i] / mass]));
}

/** Each token's share of u over a fine even grid of [0, 1). */
function shares(logits: Float32Array, T: number, topK: number, topP: number, steps = 20000): Map<number, number> {
  const out = new Map<number, number>();
  for (let i = 0; i < steps; i++) {
    const t = native.sampleToken(logits, logits.length, null, 1, T, topK, topP, (i + 0.5) / steps);
    out.set(t, (out.get(t) ?? 0) + 1 / steps);
  }
  return out;
}

test('top-k and top-p keep the tokens the reference keeps, each drawn in proportion to its weight', () => {
  const rng = new Rng(3);
  const logits = Float32Array.from({ length: 3000 }, () => rng.normal() * 2);
  logits[17] = logits[18] = 4.5; // a tie: the lower id comes first
  for (const [T, topK, topP] of [
    [0.95, 0, 0.7],
    [0.7, 50, 1],
    [1.3, 40, 0.9],
    [0.5, 0, 0.05],
    [1, 0, 1],
  ] as const) {
    const want = reference(logits, T, topK, topP);
    const got = shares(logits, T, topK, topP);
    // every token drawn is kept; every kept token with a share the grid can see is drawn
    for (const v of got.keys()) assert.ok(want.has(v), `token ${v} drawn but not kept (T=${T} k=${topK} p=${topP})`);
    for (const [v, share] of want)
      if (share > 2 / 20000) assert.ok(got.has(v), `kept token ${v} never drawn (T=${T} k=${topK} p=${topP})`);
    for (const [v, share] of want)
      assert.ok(Math.abs((got.get(v) ?? 0) - share) <= 2e-4, `token ${v}: ${got.get(v)} vs ${share}`);
  }
});

// Top-k counts tokens above a few score levels and sorts only those above the level holding k; a crowded level is
// split and counted again, and a distribution flat beyond that goes to the score bins: each way keeps the same set,
// ties of the k-th score included. Top-p alone selects by the bins too.
test('top-k and top-p keep the reference set when many tokens crowd near the best, or tie', () => {
  const rng = new Rng(5);
  const crowded = Float32Array.from({ length: 9000 }, (_, i) => (i < 6000 ? 3 - rng.uniform() * 0.4 : rng.normal()));
  const flat = new Float32Array(5000).fill(1.5);
  // every score within a few hundredths: top-p's bins span the scores there are, not the range with weight
  const narrow = Float32Array.from({ length: 4000 }, () => rng.normal() * 0.02);
  // 30 tokens tie at the 10th best score: all 39 kept (by levels); 5000 tie at the 45th, past the levels' limit
  // (by bins)
  const tied = Float32Array.from({ length: 6000 }, (_, i) => (i < 9 ? 5 + i * 0.01 : i < 39 ? 4 : i < 5039 ? 3 : 0));
  for (const [logits, T, topK, topP] of [
    [crowded, 1, 50, 1],
    [crowded, 0.8, 200, 0.9],
    [crowded, 1, 0, 0.3],
    [narrow, 0.7, 0, 0.6],
    [flat, 1, 40, 1],
    [tied, 1, 10, 1],
    [tied, 1, 45, 1],
  ] as const) {
    // a coarser grid than above (these rows are longer): a share is off by at most one step (1.25e-4)
    const steps = 8000;
    const want = reference(logits, T, topK, topP);
    const got = shares(logits, T, topK, topP, steps);
    assert.deepEqual(
      [...got.keys()].sort((a, b) => a - b),
      [...want.keys()].sort((a, b) => a - b),
    );
    for (const [v, share] of want)
      assert.ok(Math.abs(got.get(v)! - share) <= 2e-4, `token ${v}: ${got.get(v)} vs ${share}`);
  }
});

test('the repetition penalty divides seen positive scores and multiplies seen negative ones; a draw is reproducible', () => {
  const logits = Float32Array.from([2, -2, 1.9, 0]);
  const seen = Int32Array.from([0]);
  // with a tiny top-p only the best token is kept: token 0 falls to 1.33 below token 2
  assert.equal(native.sampleToken(logits, 4, seen, 1.5, 1, 0, 1e-6, 0.5), 2);
  assert.equal(native.sampleToken(logits, 4, null, 1, 1, 0, 1e-6, 0.5), 0);
  const big = Float32Array.from({ length: 152000 }, (_, i) => Math.sin(i) * 3);
  const a = native.sampleToken(big, big.length, null, 1, 0.95, 0, 0.7, 0.123);
  assert.equal(native.sampleToken(big, big.length, null, 1, 0.95, 0, 0.7, 0.123), a);
  assert.throws(
    () => native.sampleToken(logits, 4, Int32Array.from([9]), 1.5, 1, 0, 1, 0.5),
    /a seen id is outside the vocabulary/,
  );
  assert.throws(() => native.sampleToken(logits, 4, null, 1, 0, 0, 1, 0.5), /needs temperature > 0/);
});

test('a row with no finite best score draws the first best one instead of reading an empty selection', () => {
  for (const [topK, topP] of [
    [0, 0.7],
    [50, 1],
    [0, 1],
  ] as const) {
    const masked = new Float32Array(1000).fill(-Infinity);
    assert.equal(native.sampleToken(masked, masked.length, null, 1, 0.95, topK, topP, 0.5), 0);
    const nan = new Float32Array(1000).fill(Number.NaN);
    assert.equal(native.sampleToken(nan, nan.length, null, 1, 0.95, topK, topP, 0.5), 0);
    const infinite = new Float32Array(1000).fill(1);
    infinite[700] = Infinity;
    assert.equal(native.sampleToken(infinite, infinite.length, null, 1, 0.95, topK, topP, 0.5), 700);
  }
});

test('greedy argmax: the first id of the best score, wherever it lies in the vector blocks', () => {
  const rng = new Rng(5);
  for (const V of [1, 31, 32, 33, 1000, 151669]) {
    const scores = Float32Array.from({ length: V }, () => rng.normal());
    let want = 0;
    for (let v = 1; v < V; v++) if (scores[v] > scores[want]) want = v;
    assert.equal(native.argmax(scores, V), want, `V ${V}`);
    // the best placed in the tail past the last whole block, then tied earlier: the first wins
    const top = scores[want] + 1;
    scores[V - 1] = top;
    assert.equal(native.argmax(scores, V), V - 1, `V ${V}, best last`);
    if (V > 40) {
      scores[37] = top;
      assert.equal(native.argmax(scores, V), 37, `V ${V}, a tie: the first`);
    }
  }
  // masked tokens (-Infinity) and NaN scores are passed over, in the scalar tail and inside whole blocks
  const masked = Float32Array.from([-Infinity, Number.NaN, -3, -Infinity, -2.5, Number.NaN]);
  assert.equal(native.argmax(masked, masked.length), 4);
  const long = new Float32Array(100).fill(-Infinity);
  long[0] = Number.NaN;
  long[40] = Number.NaN;
  long[70] = -1;
  long[90] = -1;
  assert.equal(native.argmax(long, long.length), 70);
  assert.equal(native.argmax(new Float32Array(100).fill(-Infinity), 100), 0);
});
