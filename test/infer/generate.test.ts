// Generation: the KV-cache path gives exactly the tokens of recomputing the whole sequence each step (a 4-bit base too);
// batching, seeds, stop strings and streaming behave as documented.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generate, GenerationEngine, QueueFullError, type GenerationRequest } from '../../src/infer/generate.js';
import { loadInference, type InferenceModel } from '../../src/infer/load.js';
import { quantizeFor } from '../../src/models/quant/quantize.js';
import { argmax, chooseToken } from '../../src/infer/sampling.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { Rng } from '../../src/tensor/random.js';
import { withScope } from '../../src/tensor/tensor.js';
import { makeTinyModelFolder, tinyQwen35 } from '../helpers.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-gen-'));
test.after(() => rmSync(work, { recursive: true, force: true }));

const greedy = { doSample: false, temperature: 1, topP: 1, topK: 0, repetitionPenalty: 1 };

/** The small Qwen3.5 with weights large enough for its linear layers to steer the answers. */
const qwen35 = { ...tinyQwen35, initializer_range: 0.15 };

/** Greedy decoding without a cache: the whole sequence through the model at every step. */
function recompute(m: InferenceModel, prompt: number[], n: number): number[] {
  const ids = [...prompt];
  for (let i = 0; i < n; i++) {
    ids.push(
      noGrad(() =>
        withScope(() => {
          const logits = m.model.logits({ ids: Int32Array.from(ids), batch: 1, seq: ids.length });
          const V = logits.shape[1];
          return argmax(logits.data.subarray((ids.length - 1) * V, ids.length * V));
        }),
      ),
    );
  }
  return ids.slice(prompt.length);
}

for (const [family, overrides, bits] of [
  ['llama', {}, null],
  ['qwen2 (q/k/v biases, untied head)', { model_type: 'qwen2', tie_word_embeddings: false }, null],
  // decoding reads the 4-bit codes in place; recomputing goes through dequantised panels
  ['llama-nf4 (a 4-bit base, as quantization_bit serves it)', {}, 4],
  // linear-attention layers decode from their recurrent state, the attention layers from the KV cache
  ['qwen3_5 (hybrid: Gated DeltaNet states beside the KV cache)', qwen35, null],
] as const) {
  test(`${family}: greedy generation with the KV cache equals recomputing the sequence, alone and in a batch`, async () => {
    const dir = await makeTinyModelFolder(path.join(work, family.split(' ')[0]), overrides);
    const m = loadInference({ model: dir, template: 'llama2', quantize: quantizeFor(bits, 'nf4', true, 'f32') });
    if (bits) assert.ok(m.model.quantizedWeights().length > 0);
    const prompts = [
      'Tell me a story about a cat.',
      'Hi',
      'What is the capital of France? Answer in one word, please.',
    ].map((p) => m.template.encodePrompt(m.tokenizer, [{ role: 'user', content: p }]));
    const request = (prompt: number[]): GenerationRequest => ({
      prompt,
      sampling: greedy,
      maxNewTokens: 40,
      stopIds: [],
    });
    const batched = generate(m.model, m.tokenizer, prompts.map(request));
    prompts.forEach((p, i) => {
      const expected = recompute(m, p, 40);
      assert.deepEqual(generate(m.model, m.tokenizer, [request(p)])[0].ids, expected, `prompt ${i} alone`);
      assert.deepEqual(batched[i].ids, expected, `prompt ${i} in a batch`);
      assert.equal(batched[i].finishReason, 'length');
    });
    m.dispose();
  });
}

test('sampling: a seed reproduces the answer; top_k 1 and a tiny top_p are greedy; the repetition penalty follows transformers', async () => {
  const dir = await makeTinyModelFolder(path.join(work, 'sample'));
  const m = loadInference({ model: dir, template: 'llama2' });
  const prompt = m.template.encodePrompt(m.tokenizer, [{ role: 'user', content: 'Say something.' }]);
  const sampled = (seed: number, over: object = {}) =>
    generate(m.model, m.tokenizer, [
      {
        prompt,
        sampling: { doSample: true, temperature: 1.5, topP: 1, topK: 0, repetitionPenalty: 1, ...over },
        maxNewTokens: 20,
        stopIds: [],
        seed,
      },
    ])[0].ids;
  assert.deepEqual(sampled(5), sampled(5));
  assert.notDeepEqual(sampled(5), sampled(6));
  const greedyIds = generate(m.model, m.tokenizer, [{ prompt, sampling: greedy, maxNewTokens: 20, stopIds: [] }])[0]
    .ids;
  assert.deepEqual(sampled(5, { topK: 1 }), greedyIds);
  assert.deepEqual(sampled(5, { topP: 1e-6 }), greedyIds);

  const logits = Float32Array.from([2, -2, 1.9, 0]);
  // token 0 (seen, positive) is divided by 1.5 -> 1.33, token 2 wins; a seen negative logit is multiplied
  assert.equal(chooseToken(logits, new Set([0]), { ...greedy, repetitionPenalty: 1.5 }, new Rng(0)), 2);
  assert.equal(
    chooseToken(Float32Array.from([-1, -1.2]), new Set([0]), { ...greedy, repetitionPenalty: 1.5 }, new Rng(0)),
    1,
  );
  // temperature sampling draws in proportion to exp(logit / T)
  const counts = [0, 0];
  const rng = new Rng(1);
  for (let i = 0; i < 4000; i++)
    counts[chooseToken(Float32Array.from([Math.log(3), 0]), new Set(), { ...greedy, doSample: true }, rng)]++;
  assert.ok(Math.abs(counts[0] / 4000 - 0.75) < 0.03, `P(token 0) = ${counts[0] / 4000}`);
  m.dispose();
});

test('stop strings cut the answer; streamed pieces add up to the final text; stop ids end it', async () => {
  const dir = await makeTinyModelFolder(path.join(work, 'stop'));
  const m = loadInference({ model: dir, template: 'llama2' });
  const prompt = m.template.encodePrompt(m.tokenizer, [{ role: 'user', content: 'Write.' }]);
  const base: GenerationRequest = { prompt, sampling: greedy, maxNewTokens: 30, stopIds: [] };
  const full = generate(m.model, m.tokenizer, [base])[0];
  assert.ok(full.text.length > 8, full.text);
  const stop = full.text.slice(5, 8);
  const pieces: string[] = [];
  const cut = generate(m.model, m.tokenizer, [{ ...base, stopStrings: [stop] }], (_, d) => pieces.push(d))[0];
  assert.equal(cut.text, full.text.slice(0, full.text.indexOf(stop)));
  assert.equal(cut.finishReason, 'stop');
  assert.equal(pieces.join(''), cut.text);
  const byId = generate(m.model, m.tokenizer, [{ ...base, stopIds: [full.ids[3]] }])[0];
  assert.deepEqual(byId.ids, full.ids.slice(0, full.ids.indexOf(full.ids[3])));
  assert.equal(byId.finishReason, 'stop');
  m.dispose();
});

test('the engine: concurrent requests give the answers they get alone; a full queue refuses; an abort cancels', async () => {
  const dir = await makeTinyModelFolder(path.join(work, 'engine'));
  const m = loadInference({ model: dir, template: 'llama2' });
  const engine = new GenerationEngine(m.model, m.tokenizer, { maxActive: 2, maxQueued: 2 });
  const prompts = ['one', 'two', 'three', 'four'].map((p) =>
    m.template.encodePrompt(m.tokenizer, [{ role: 'user', content: p }]),
  );
  const req = (prompt: number[]): GenerationRequest => ({ prompt, sampling: greedy, maxNewTokens: 12, stopIds: [] });
  const pending = prompts.map((p) => engine.submit(req(p)));
  assert.throws(() => engine.submit(req(prompts[0])), QueueFullError);
  const results = await Promise.all(pending);
  prompts.forEach((p, i) => assert.deepEqual(results[i].ids, generate(m.model, m.tokenizer, [req(p)])[0].ids));

  const controller = new AbortController();
  let seen = 0;
  const cancelled = await engine.submit(
    { ...req(prompts[0]), maxNewTokens: 200 },
    () => {
      if (++seen === 3) controller.abort();
    },
    controller.signal,
  );
  assert.equal(cancelled.finishReason, 'cancelled');
  assert.ok(cancelled.ids.length < 10, `stopped after ${cancelled.ids.length} tokens`);
  m.dispose();
});

test('two adapters at inference stay separate (summed per layer) and give the logits of merging both', async () => {
  const { attachLora } = await import('../../src/adapters/lora.js');
  const { savePeftAdapter } = await import('../../src/adapters/peft.js');
  const { loadModel } = await import('../../src/models/registry.js');
  const { maxAbsDiff } = await import('../helpers.js');
  const dir = await makeTinyModelFolder(path.join(work, 'stack'));
  const adapters = [1, 2].map((seed) => {
    const out = path.join(work, `adapter-${seed}`);
    const { model } = loadModel(dir);
    const settings = {
      r: 4,
      alpha: 8,
      dropout: 0,
      targetModules: seed === 1 ? 'all' : ['q_proj', 'v_proj'],
      useRslora: false,
    };
    const layers = attachLora(model, settings, new Rng(seed));
    const rng = new Rng(seed + 10);
    for (const l of layers.values()) for (let i = 0; i < l.B.size; i++) l.B.data[i] = rng.normal() * 0.05;
    savePeftAdapter(out, layers, settings, dir);
    model.dispose();
    return out;
  });
  const ids = Int32Array.from([1, 450, 4996, 17354, 1701, 29916]);
  const logits = (m: InferenceModel) =>
    noGrad(() => withScope(() => Float32Array.from(m.model.logits({ ids, batch: 1, seq: ids.length }).data)));
  const stacked = loadInference({ model: dir, adapters });
  assert.ok(
    stacked.model.layers[0].projections()[0][1].delta?.constructor.name === 'StackedDelta',
    'q_proj carries both adapters, unmerged',
  );
  const merged = loadInference({ model: dir, adapters, mergeAll: true });
  const first = loadInference({ model: dir, adapters: adapters.slice(0, 1) });
  const [a, b, c] = [logits(stacked), logits(merged), logits(first)];
  assert.ok(maxAbsDiff(a, b) < 1e-4, `stacked vs merged: ${maxAbsDiff(a, b)}`);
  assert.ok(maxAbsDiff(a, c) > 1e-3, 'the second adapter changes the output');
  for (const m of [stacked, merged, first]) m.dispose();
});

test("generation settings: the config over generation_config.json over LLaMA-Factory's defaults; its EOS ids stop answers", async () => {
  const { writeFileSync } = await import('node:fs');
  const { configSettings } = await import('../../src/infer/load.js');
  const { stopIdsOf } = await import('../../src/infer/settings.js');
  const { configSchema } = await import('../../src/config/schema.js');
  const dir = await makeTinyModelFolder(path.join(work, 'genconfig'));
  writeFileSync(
    path.join(dir, 'generation_config.json'),
    JSON.stringify({ do_sample: false, temperature: 0.3, top_k: 5, max_new_tokens: 7, eos_token_id: [2, 13] }),
  );
  const m = loadInference({ model: dir, template: 'llama2' });
  const c = configSchema.parse({ model_name_or_path: dir, temperature: 0.6 });
  assert.deepEqual(configSettings(c, m), {
    doSample: false,
    temperature: 0.6,
    topP: 0.7,
    topK: 5,
    repetitionPenalty: 1,
    maxNewTokens: 7,
  });
  assert.ok(stopIdsOf(m, m.generationConfig).includes(13));
  writeFileSync(path.join(dir, 'generation_config.json'), '{"temperature": "hot"}');
  assert.throws(
    () => loadInference({ model: dir }),
    (e: Error & { format(): string }) => /generation_config\.json/.test(e.format()) && /temperature/.test(e.format()),
  );
  m.dispose();
});

for (const [family, overrides] of [
  ['llama', {}],
  // a recurrent state cannot be cut back: a prompt that leaves the kept conversation starts afresh
  ['qwen3_5', qwen35],
] as const)
  test(`${family}: the engine reuses a finished conversation's cache for its next turn, with the answers of a fresh start`, async () => {
    const dir = await makeTinyModelFolder(path.join(work, `reuse-${family}`), overrides);
    const m = loadInference({ model: dir, template: 'llama2' });
    const turn1 = m.template.encodePrompt(m.tokenizer, [
      { role: 'user', content: 'Tell me about the sea and the ships on it.' },
    ]);
    const req = (prompt: number[]): GenerationRequest => ({ prompt, sampling: greedy, maxNewTokens: 10, stopIds: [] });
    const warm = new GenerationEngine(m.model, m.tokenizer, { maxActive: 2, maxQueued: 2 });
    const first = await warm.submit(req(turn1));
    const turn2 = [...turn1, ...first.ids, ...m.tokenizer.encode(' And the harbour?')];
    const second = await warm.submit(req(turn2));
    assert.ok(warm.reusedTokens >= turn1.length, `reused ${warm.reusedTokens} tokens`);
    const cold = new GenerationEngine(m.model, m.tokenizer, { maxActive: 2, maxQueued: 2, keepCaches: 0 });
    const fresh = await cold.submit(req(turn2));
    assert.equal(cold.reusedTokens, 0);
    assert.deepEqual(second.ids, fresh.ids);
    assert.deepEqual(
      (await warm.submit(req(turn1))).ids,
      first.ids,
      'a shorter prompt truncates a kept cache correctly',
    );
    m.dispose();
  });
