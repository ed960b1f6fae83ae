// Packing: bins respect the capacity, and a packed row gives each sequence exactly the logits it gets alone,
// so no token sees another sequence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { knapsack, packRows, padBatch } from '../../src/data/collator.js';
import { parseModelConfig } from '../../src/models/config.js';
import { initModel } from '../../src/models/init.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { Rng } from '../../src/tensor/random.js';
import { withScope } from '../../src/tensor/tensor.js';
import { maxAbsDiff } from '../helpers.js';
import { maxOf } from '../../src/util/arrays.js';

test('greedy knapsack fills bins without exceeding the capacity and leaves no example out', () => {
  const lengths = [5, 9, 3, 7, 2, 8, 4, 11, 1];
  const bins = knapsack(lengths, 12);
  assert.deepEqual(
    bins.flat().sort((a, b) => a - b),
    lengths.map((_, i) => i).filter((i) => lengths[i] <= 12),
  );
  for (const bin of bins) assert.ok(bin.reduce((a, i) => a + lengths[i], 0) <= 12);
  assert.equal(
    bins[0].reduce((a, i) => a + lengths[i], 0),
    12,
  );
});

test('a packed row gives every sequence the logits it has alone (positions restart, no cross attention)', () => {
  const model = initModel(
    parseModelConfig(
      {
        model_type: 'llama',
        vocab_size: 50,
        hidden_size: 32,
        intermediate_size: 48,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
      },
      't',
    ),
    'f32',
    9,
    0.3,
  );
  const rng = new Rng(2);
  const seqs = [7, 12, 5, 9].map((n) => Array.from({ length: n }, () => rng.int(50)));
  const rows = packRows(
    seqs.map((ids) => ({ ids, labels: ids })),
    20,
    0,
  );
  assert.ok(rows.length >= 2);
  noGrad(() =>
    withScope(() => {
      for (const row of rows) {
        const packed = model.logits({
          ids: row.ids,
          batch: 1,
          seq: row.seq,
          positions: row.positions,
          segments: row.segments,
        });
        let at = 0;
        for (let s = 1; s <= maxOf(row.segments!); s++) {
          const n = row.segments!.filter((x) => x === s).length;
          const ids = row.ids.slice(at, at + n);
          const alone = model.logits({ ids, batch: 1, seq: n });
          assert.ok(maxAbsDiff(alone.data, packed.data.subarray(at * 50, (at + n) * 50)) < 1e-5);
          at += n;
        }
      }
    }),
  );
  const padded = padBatch(
    seqs.slice(0, 2).map((ids) => ({ ids, labels: ids })),
    0,
  );
  assert.equal(padded.seq, 16);
  assert.equal(padded.labels[7], -100);
  model.dispose();
});
