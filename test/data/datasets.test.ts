// Dataset files through dataset_info.json: every format, every stage processor, and each class of bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { configSchema, type TrainConfig } from '../../src/config/schema.js';
import { prepareData } from '../../src/data/pipeline.js';
import { LmfError } from '../../src/errors.js';
import { HfTokenizer } from '../../src/data/tokenizer.js';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { lenmlTokenizerDir } from '../helpers.js';

const tok = HfTokenizer.fromDir(lenmlTokenizerDir('qwen3'));

function datasetDir(info: Record<string, unknown>, files: Record<string, string | Buffer>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lmf-data-'));
  writeFileSync(path.join(dir, 'dataset_info.json'), JSON.stringify(info));
  for (const [name, body] of Object.entries(files)) writeFileSync(path.join(dir, name), body);
  return dir;
}

function config(dir: string, extra: Partial<TrainConfig> & Record<string, unknown>): TrainConfig {
  return configSchema.parse({
    model_name_or_path: 'unused',
    dataset_dir: dir,
    template: 'qwen',
    cutoff_len: 256,
    ...extra,
  });
}

async function rejects(p: Promise<unknown>, code: string, pattern: RegExp): Promise<LmfError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof LmfError, String(e));
    assert.equal(e.code, code);
    assert.match(`${e.message} ${e.context.hint ?? ''}`, pattern);
    return e;
  }
  return assert.fail('no error');
}

const alpacaRows = [
  { instruction: 'Add 2 and 3.', input: '', output: '5' },
  { instruction: 'Translate', input: 'chat', output: 'cat', system: 'Be brief.', history: [['Hi', 'Hello!']] },
];

test('alpaca (json array, jsonl, csv) with system and history becomes sft examples', async () => {
  const dir = datasetDir(
    {
      a: {
        file_name: 'a.json',
        columns: { prompt: 'instruction', query: 'input', response: 'output', system: 'system', history: 'history' },
      },
      b: { file_name: 'b.jsonl' },
      c: { file_name: 'c.csv' },
    },
    {
      'a.json': JSON.stringify(alpacaRows),
      'b.jsonl': alpacaRows
        .slice(0, 1)
        .map((r) => JSON.stringify(r))
        .join('\n'),
      'c.csv': 'instruction,input,output\n"Say ""hi""",,hi\n',
    },
  );
  const d = await prepareData(config(dir, { dataset: ['a', 'b', 'c'] }), tok);
  assert.equal(d.train.kind, 'sft');
  if (d.train.kind !== 'sft') return;
  assert.equal(d.train.examples.length, 4);
  const second = tok.decode(d.train.examples[1].ids);
  assert.ok(second.startsWith('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>'));
  assert.ok(second.includes('<|im_start|>user\nTranslate\nchat<|im_end|>'));
  assert.equal(tok.decode(d.train.examples[1].labels.filter((l) => l >= 0)), 'Hello!<|im_end|>\ncat<|im_end|>\n');
  assert.ok(tok.decode(d.train.examples[0].ids).includes('You are Qwen'), 'default system of the qwen template');
  assert.ok(tok.decode(d.train.examples[3].ids).includes('Say "hi"'));
});

test('sharegpt and openai formats, with tags, system turn and tool calls', async () => {
  const dir = datasetDir(
    {
      s: { file_name: 's.json', formatting: 'sharegpt', columns: { messages: 'conversations', tools: 'tools' } },
      o: {
        file_name: 'o.json',
        formatting: 'sharegpt',
        columns: { messages: 'messages' },
        tags: {
          role_tag: 'role',
          content_tag: 'content',
          user_tag: 'user',
          assistant_tag: 'assistant',
          system_tag: 'system',
        },
      },
    },
    {
      's.json': JSON.stringify([
        {
          conversations: [
            { from: 'human', value: 'Weather in Paris?' },
            { from: 'function_call', value: '{"name": "weather", "arguments": {"city": "Paris"}}' },
            { from: 'observation', value: '18C' },
            { from: 'gpt', value: 'It is 18C.' },
          ],
          tools: JSON.stringify([
            {
              name: 'weather',
              description: 'Weather of a city',
              parameters: { type: 'object', properties: { city: { type: 'string' } } },
            },
          ]),
        },
      ]),
      'o.json': JSON.stringify([
        {
          messages: [
            { role: 'system', content: 'Sys.' },
            { role: 'user', content: 'Q' },
            { role: 'assistant', content: 'A' },
          ],
        },
      ]),
    },
  );
  const d = await prepareData(config(dir, { dataset: ['s', 'o'] }), tok);
  if (d.train.kind !== 'sft') return assert.fail();
  const text = tok.decode(d.train.examples[0].ids);
  assert.ok(text.includes('# Tools') && text.includes('"name": "weather"'));
  assert.ok(text.includes('<tool_call>\n{"name": "weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>'));
  assert.ok(text.includes('<tool_response>\n18C\n</tool_response>'));
  assert.ok(tok.decode(d.train.examples[1].ids).startsWith('<|im_start|>system\nSys.<|im_end|>'));
});

test('preference data (alpaca and sharegpt) becomes chosen/rejected pairs sharing one prompt', async () => {
  const dir = datasetDir(
    {
      p: {
        file_name: 'p.json',
        ranking: true,
        columns: { prompt: 'instruction', chosen: 'chosen', rejected: 'rejected' },
      },
      q: {
        file_name: 'q.json',
        ranking: true,
        formatting: 'sharegpt',
        columns: { messages: 'conversations', chosen: 'chosen', rejected: 'rejected' },
      },
    },
    {
      'p.json': JSON.stringify([{ instruction: '2+2?', chosen: '4', rejected: '5' }]),
      'q.json': JSON.stringify([
        {
          conversations: [{ from: 'human', value: '3+3?' }],
          chosen: { from: 'gpt', value: '6' },
          rejected: { from: 'gpt', value: 'seven' },
        },
      ]),
    },
  );
  const d = await prepareData(config(dir, { dataset: ['p', 'q'], stage: 'dpo' }), tok);
  if (d.train.kind !== 'pairwise') return assert.fail();
  const [pair] = d.train.pairs;
  const promptLen = pair.chosen.labels.findIndex((l) => l >= 0);
  assert.deepEqual(pair.chosen.ids.slice(0, promptLen), pair.rejected.ids.slice(0, promptLen));
  assert.equal(tok.decode(pair.chosen.labels.filter((l) => l >= 0)), '4<|im_end|>\n');
  assert.equal(tok.decode(pair.rejected.labels.filter((l) => l >= 0)), '5<|im_end|>\n');
  await rejects(prepareData(config(dir, { dataset: ['p'], stage: 'sft' }), tok), 'dataset_stage', /preference dataset/);
});

test('kto: tags and mismatched pairs for the KL term', async () => {
  const dir = datasetDir(
    { k: { file_name: 'k.json', columns: { prompt: 'instruction', response: 'output', kto_tag: 'label' } } },
    {
      'k.json': JSON.stringify([
        { instruction: 'A?', output: 'a', label: true },
        { instruction: 'B?', output: 'b', label: false },
      ]),
    },
  );
  const d = await prepareData(config(dir, { dataset: ['k'], stage: 'kto' }), tok);
  if (d.train.kind !== 'kto') return assert.fail();
  assert.deepEqual(
    d.train.examples.map((e) => e.desirable),
    [true, false],
  );
  assert.ok(tok.decode(d.train.examples[1].kl.ids).includes('B?<|im_end|>\n<|im_start|>assistant\na<|im_end|>'));
});

test('pt: documents end with EOS and are cut into cutoff_len blocks', async () => {
  const dir = datasetDir(
    { t: { file_name: 'c.json', columns: { prompt: 'text' } } },
    {
      'c.json': JSON.stringify(
        Array.from({ length: 20 }, (_, i) => ({
          text: `Document number ${i} talks about the weather in some detail.`,
        })),
      ),
    },
  );
  const d = await prepareData(config(dir, { dataset: ['t'], stage: 'pt', cutoff_len: 32 }), tok);
  if (d.train.kind !== 'pt') return assert.fail();
  assert.ok(d.train.examples.length >= 5);
  for (const e of d.train.examples) {
    assert.equal(e.ids.length, 32);
    assert.deepEqual(e.labels, e.ids);
  }
  assert.ok(d.train.examples[0].ids.includes(tok.eosId!));
});

test('val_size, max_samples, num_samples and interleaving', async () => {
  const rows = Array.from({ length: 40 }, (_, i) => ({ instruction: `q${i}`, output: `a${i}` }));
  const dir = datasetDir(
    { a: { file_name: 'a.json' }, b: { file_name: 'b.json', num_samples: 60 } },
    { 'a.json': JSON.stringify(rows), 'b.json': JSON.stringify(rows.slice(0, 10)) },
  );
  const split = await prepareData(config(dir, { dataset: ['a'], val_size: 0.25 }), tok);
  if (split.train.kind !== 'sft' || split.eval?.kind !== 'sft') return assert.fail();
  assert.equal(split.train.examples.length, 30);
  assert.equal(split.eval.examples.length, 10);
  const capped = await prepareData(config(dir, { dataset: ['a'], max_samples: 7 }), tok);
  assert.equal(capped.stats.examples, 7);
  const upsampled = await prepareData(config(dir, { dataset: ['b'] }), tok);
  assert.equal(upsampled.stats.examples, 60);
  const under = await prepareData(
    config(dir, { dataset: ['a', 'b'], mix_strategy: 'interleave_under', interleave_probs: [0.5, 0.5] }),
    tok,
  );
  assert.ok(under.stats.examples < 100);
});

test('bad input: missing file, invalid JSON, wrong column, empty response, turns out of order, non-UTF-8, unknown template', async () => {
  const dir = datasetDir(
    {
      missing: { file_name: 'nope.json' },
      broken: { file_name: 'broken.json' },
      wrongcol: { file_name: 'ok.json', columns: { prompt: 'instrution' } },
      empty: { file_name: 'empty.json' },
      order: { file_name: 'order.json', formatting: 'sharegpt' },
      latin1: { file_name: 'latin1.jsonl' },
    },
    {
      'broken.json': '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]',
      'ok.json': JSON.stringify([{ instruction: 'a', output: 'b' }]),
      'empty.json': JSON.stringify([
        { instruction: 'a', output: '' },
        { instruction: 'b', output: 'fine' },
      ]),
      'order.json': JSON.stringify([
        {
          conversations: [
            { from: 'gpt', value: 'x' },
            { from: 'human', value: 'y' },
          ],
        },
        {
          conversations: [
            { from: 'human', value: 'q' },
            { from: 'gpt', value: 'a' },
          ],
        },
      ]),
      'latin1.jsonl': Buffer.concat([
        Buffer.from('{"instruction": "caf'),
        Buffer.from([0xe9]),
        Buffer.from('", "output": "x"}\n'),
      ]),
    },
  );
  await rejects(prepareData(config(dir, { dataset: ['missing'] }), tok), 'file_missing', /does not exist/);
  const bad = await rejects(prepareData(config(dir, { dataset: ['broken'] }), tok), 'bad_json', /line 3, column \d+/);
  assert.equal(bad.context.row, 3);
  await rejects(
    prepareData(config(dir, { dataset: ['wrongcol'] }), tok),
    'unknown_column',
    /did you mean "instruction"/,
  );
  const empty = await prepareData(config(dir, { dataset: ['empty'] }), tok);
  assert.equal(empty.stats.examples, 1);
  assert.match(
    `${empty.problems[0].file}:${empty.problems[0].row}: ${empty.problems[0].message}`,
    /empty\.json:1: empty response/,
  );
  const order = await prepareData(config(dir, { dataset: ['order'] }), tok);
  assert.match(order.problems[0].message, /turn 1 is a assistant turn where a user or observation turn belongs/);
  await rejects(prepareData(config(dir, { dataset: ['latin1'] }), tok), 'bad_encoding', /not valid UTF-8/);
  await rejects(
    prepareData(config(dir, { dataset: ['ok'], template: 'qwen_3' }), tok),
    'unknown_template',
    /did you mean "qwen3"/,
  );
  await rejects(prepareData(config(dir, { dataset: ['emptyy'] }), tok), 'unknown_dataset', /did you mean "empty"/);
});

test('the tokenised cache is used when nothing changed and missed when a file, the template or an option did', async () => {
  process.env.LMF_CACHE = mkdtempSync(path.join(os.tmpdir(), 'lmf-cache-'));
  const dir = datasetDir({ a: { file_name: 'a.json' } }, { 'a.json': JSON.stringify(alpacaRows) });
  const c = config(dir, { dataset: ['a'] });
  assert.equal((await prepareData(c, tok)).fromCache, false);
  const again = await prepareData(c, tok);
  assert.equal(again.fromCache, true);
  assert.equal(again.stats.examples, 2);
  assert.equal((await prepareData({ ...c, cutoff_len: 100 }, tok)).fromCache, false);
  assert.equal((await prepareData({ ...c, template: 'chatml' }, tok)).fromCache, false);
  assert.equal((await prepareData({ ...c, overwrite_cache: true }, tok)).fromCache, false);
  writeFileSync(path.join(dir, 'a.json'), JSON.stringify([...alpacaRows, { instruction: 'x', output: 'y' }]));
  const changed = await prepareData(c, tok);
  assert.equal(changed.fromCache, false);
  assert.equal(changed.stats.examples, 3);
});

const varied = [
  'Plain English, with punctuation!',
  '  leading and   repeated spaces\ttabs\r\nCRLF',
  '中文字符和日本語のテキスト',
  'emoji 🎉🚀 and accents: café, naïve, Ångström',
  "contractions don't can't we'll",
  'digits 1234567890 3.14159 1e-4',
  'literal <|im_start|> and <|eot_id|> text',
  'code: `const x = a[i] ?? 0;` // comment',
];

test('tokenisation paths agree: JS library, JS worker threads, and the Rust binding in batches', async () => {
  const rows = Array.from({ length: 700 }, (_, i) => ({
    instruction: `${varied[i % varied.length]} #${i}?`,
    output: `${varied[(i * 3) % varied.length]} ${i * 7}.`,
  }));
  const dir = datasetDir({ a: { file_name: 'a.json' } }, { 'a.json': JSON.stringify(rows) });
  for (const name of ['qwen3', 'llama3', 'llama2'] as const) {
    const template = name === 'llama2' ? 'llama2' : name === 'llama3' ? 'llama3' : 'qwen';
    const c = (workers: number) =>
      configSchema.parse({
        model_name_or_path: lenmlTokenizerDir(name),
        dataset_dir: dir,
        template,
        dataset: ['a'],
        cutoff_len: 256,
        preprocessing_num_workers: workers,
        overwrite_cache: true,
      });
    process.env.LMF_JS_TOKENIZER = '1';
    const js = await prepareData(c(1), HfTokenizer.fromDir(lenmlTokenizerDir(name)));
    const workers = await prepareData(c(2), HfTokenizer.fromDir(lenmlTokenizerDir(name)));
    delete process.env.LMF_JS_TOKENIZER;
    const rustTok = HfTokenizer.fromDir(lenmlTokenizerDir(name));
    assert.ok(rustTok.hasBatchEncoder(), 'the optional Rust binding is installed in development');
    const rust = await prepareData(c(2), rustTok);
    assert.deepEqual(workers.train, js.train, `${name}: worker threads`);
    assert.deepEqual(rust.train, js.train, `${name}: Rust binding`);
  }
});

test('parquet files and folders of them are read', async () => {
  const buf = (rows: { instruction: string; output: string }[]) =>
    Buffer.from(
      parquetWriteBuffer({
        columnData: [
          { name: 'instruction', data: rows.map((r) => r.instruction), type: 'STRING' },
          { name: 'output', data: rows.map((r) => r.output), type: 'STRING' },
        ],
      }),
    );
  const dir = datasetDir({ p: { file_name: 'pq' } }, {});
  mkdirSync(path.join(dir, 'pq'));
  writeFileSync(path.join(dir, 'pq', 'part-0.parquet'), buf([{ instruction: 'one?', output: '1' }]));
  writeFileSync(
    path.join(dir, 'pq', 'part-1.parquet'),
    buf([
      { instruction: 'two?', output: '2' },
      { instruction: 'three?', output: '3' },
    ]),
  );
  const d = await prepareData(config(dir, { dataset: ['p'] }), tok);
  if (d.train.kind !== 'sft') return assert.fail();
  assert.deepEqual(
    d.train.examples.map((e) => tok.decode(e.labels.filter((l) => l >= 0))),
    ['1<|im_end|>\n', '2<|im_end|>\n', '3<|im_end|>\n'],
  );
});

test('formatting openai: tool_calls become function turns, consecutive tool results one observation', async () => {
  const dir = datasetDir(
    { o: { file_name: 'o.jsonl', formatting: 'openai', columns: { messages: 'messages', tools: 'tools' } } },
    {
      'o.jsonl': JSON.stringify({
        messages: [
          { role: 'user', content: 'Weather in Paris and Rome?' },
          {
            role: 'assistant',
            content: '',
            tool_calls: [
              { type: 'function', function: { name: 'weather', arguments: '{"city": "Paris"}' } },
              { type: 'function', function: { name: 'weather', arguments: '{"city": "Rome"}' } },
            ],
          },
          { role: 'tool', content: '18C' },
          { role: 'tool', content: '24C' },
          { role: 'assistant', content: 'Paris 18C, Rome 24C.' },
        ],
        tools: JSON.stringify([
          {
            type: 'function',
            function: { name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
          },
        ]),
      }),
    },
  );
  const d = await prepareData(config(dir, { dataset: ['o'] }), tok);
  if (d.train.kind !== 'sft') return assert.fail();
  const text = tok.decode(d.train.examples[0].ids);
  assert.ok(
    text.includes(
      '<tool_call>\n{"name": "weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "weather", "arguments": {"city": "Rome"}}\n</tool_call><|im_end|>',
    ),
  );
  assert.ok(text.includes('<tool_response>\n18C\n</tool_response>\n<tool_response>\n24C\n</tool_response>'));
  assert.equal(
    tok.decode(d.train.examples[0].labels.filter((l) => l >= 0)).endsWith('Paris 18C, Rome 24C.<|im_end|>\n'),
    true,
  );
});
