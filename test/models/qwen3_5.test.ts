// Qwen3.5's hybrid model beyond the goldens (family-golden.test.ts): the generation state of its Gated DeltaNet
// layers (token by token and chunked from a state) against recomputation in chunks, sequences of different lengths batched in one call,
// packed sequences kept apart, a cache that cannot be rewound, and the text model written back as
// Qwen3_5ForCausalLM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getTemplate } from '../../src/data/templates/registry.js';
import { familyById } from '../../src/models/families/index.js';
import { loadModel } from '../../src/models/registry.js';
import { saveModelFolder } from '../../src/models/save.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { withScope } from '../../src/tensor/tensor.js';
import { familyFixtureDirs, maxAbsDiff } from '../helpers.js';

const fixture = path.join(
  familyFixtureDirs.find((d) => d.endsWith('qwen3_5-tiny'))!,
  'model',
);
const tokens = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 3 + ((i * 37 + seed * 11) % 120));

// The whole sequence runs the rule in 64-token chunks from a zero state; the pieces run it token by token (20
// tokens, and the single tokens) and in chunks from a carried state (64 tokens at once).
test('qwen3_5: a prompt in pieces, then one token at a time, equals recomputing the whole sequence', () => {
  const { model } = loadModel(fixture);
  const ids = tokens(100, 1);
  const V = model.config.vocabSize;
  noGrad(() =>
    withScope(() => {
      const full = model.logits({ ids: Int32Array.from(ids), batch: 1, seq: ids.length }).data;
      const cache = model.newCache();
      const lastPositions = [19, 83];
      const rows = [
        model.extend([ids.slice(0, 20)], [cache]).toArray(),
        model.extend([ids.slice(20, 84)], [cache]).toArray(),
      ];
      for (let t = 84; t < ids.length; t++) {
        rows.push(model.extend([[ids[t]]], [cache]).toArray());
        lastPositions.push(t);
      }
      rows.forEach((row, i) => {
        const t = lastPositions[i];
        assert.ok(maxAbsDiff(row, full.subarray(t * V, (t + 1) * V)) < 1e-4, `position ${t}`);
      });
    }),
  );
  model.dispose();
});

test('qwen3_5: sequences of different lengths in one call equal each alone (continuous batching)', () => {
  const { model } = loadModel(fixture);
  const [a, b] = [tokens(30, 2), tokens(75, 3)];
  noGrad(() =>
    withScope(() => {
      const alone = [a, b].map((ids) => model.extend([ids], [model.newCache()]).toArray());
      const caches = [model.newCache(), model.newCache()];
      const both = model.extend([a.slice(0, 20), b.slice(0, 60)], caches).toArray();
      const next = model.extend([a.slice(20), b.slice(60)], caches).toArray();
      const V = model.config.vocabSize;
      assert.ok(maxAbsDiff(next.subarray(0, V), alone[0]) < 1e-4);
      assert.ok(maxAbsDiff(next.subarray(V), alone[1]) < 1e-4);
      assert.equal(both.length, 2 * V);
    }),
  );
  model.dispose();
});

test('qwen3_5: two sequences packed in one row (segments) give the logits each gives alone', () => {
  const { model } = loadModel(fixture);
  const [a, b] = [tokens(40, 4), tokens(50, 5)];
  const V = model.config.vocabSize;
  noGrad(() =>
    withScope(() => {
      const packed = model.logits({
        ids: Int32Array.from([...a, ...b]),
        batch: 1,
        seq: a.length + b.length,
        positions: Int32Array.from([...a.keys(), ...b.keys()]),
        segments: Int32Array.from([...a.map(() => 1), ...b.map(() => 2)]),
      }).data;
      const alone = model.logits({ ids: Int32Array.from(b), batch: 1, seq: b.length }).data;
      assert.ok(maxAbsDiff(packed.subarray(a.length * V), alone) < 1e-4);
    }),
  );
  model.dispose();
});

test('qwen3_5: a cache with recurrent states is kept whole or emptied, never cut to a prefix', () => {
  const { model } = loadModel(fixture);
  const ids = tokens(12, 6);
  noGrad(() =>
    withScope(() => {
      const cache = model.newCache();
      model.extend([ids], [cache]);
      cache.truncate(ids.length);
      assert.equal(cache.length, ids.length);
      cache.truncate(5);
      assert.equal(cache.length, 0);
      // emptied means fresh: the same prompt gives the same logits as a new cache
      const again = model.extend([ids], [cache]).toArray();
      assert.equal(maxAbsDiff(again, model.extend([ids], [model.newCache()]).toArray()), 0);
    }),
  );
  model.dispose();
});

test('qwen3_5: the text model is written back as Qwen3_5ForCausalLM and reloads to the same logits', () => {
  const { model } = loadModel(fixture);
  const out = mkdtempSync(path.join(os.tmpdir(), 'lmf-qwen35-'));
  try {
    saveModelFolder(model, out, { dtype: 'F32' });
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.model_type, 'qwen3_5_text');
    assert.deepEqual(config.architectures, ['Qwen3_5ForCausalLM']);
    assert.equal(config.text_config, undefined);
    const reloaded = loadModel(out);
    assert.deepEqual(reloaded.unused, []);
    const ids = Int32Array.from(tokens(20, 7));
    noGrad(() =>
      withScope(() => {
        const want = model.logits({ ids, batch: 1, seq: ids.length }).data;
        assert.equal(maxAbsDiff(reloaded.model.logits({ ids, batch: 1, seq: ids.length }).data, want), 0);
      }),
    );
    reloaded.model.dispose();
  } finally {
    rmSync(out, { recursive: true, force: true });
    model.dispose();
  }
});

test('qwen3_5: chat templates imply qwen3_5 (thinking) or qwen3_5_nothink; its tool syntax is refused by name', () => {
  const family = familyById('qwen3_5');
  assert.equal(family.template('<|im_start|>{% if enable_thinking %}<think>{% endif %}'), 'qwen3_5');
  assert.equal(family.template('<|im_start|>user'), 'qwen3_5_nothink');
  assert.throws(
    () =>
      getTemplate('qwen3_5').encodeMultiturn(
        { encode: () => [], decode: () => '' } as never,
        [
          { role: 'user', content: 'weather?' },
          { role: 'function', content: '{"name": "w", "arguments": {}}' },
        ],
        { tools: '[{"name": "w"}]' },
      ),
    /qwen3_5 template's tool-call format is not implemented/,
  );
});
