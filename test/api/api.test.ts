// `lmf api` end to end: a real server on loopback, talked to with the official openai client. The tiny model
// is first fine-tuned on data/tool_demo.json so that its answers (and tool calls) are known.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { buildApiServer } from '../../src/api/server.js';
import { loadInference } from '../../src/infer/load.js';
import { mergeSettings } from '../../src/infer/settings.js';
import { makeTinyModelFolder, lmfEntry, lmf } from '../helpers.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-api-'));
const trained = path.join(work, 'trained');
const key = 'sk-test-123';
let server: ChildProcess;
let baseURL: string;

const tools = (JSON.parse(JSON.parse(readFileSync('data/tool_demo.json', 'utf8'))[0].tools) as object[]).map((f) => ({
  type: 'function' as const,
  function: f as { name: string },
}));

before(async () => {
  await makeTinyModelFolder(path.join(work, 'tiny'));
  const sft = path.join(work, 'sft.yaml');
  writeFileSync(
    sft,
    `model_name_or_path: ${path.join(work, 'tiny')}\nstage: sft\ndataset: tool_demo\ndataset_dir: data\ntemplate: default\n` +
      `cutoff_len: 512\noutput_dir: ${trained}\nfinetuning_type: full\nper_device_train_batch_size: 3\nlearning_rate: 1.0e-2\n` +
      'max_steps: 200\nlr_scheduler_type: cosine\nwarmup_steps: 10\nlogging_steps: 50\nseed: 1\n',
  );
  const r = lmf('train', sft);
  assert.equal(r.status, 0, r.stderr);
  const serve = path.join(work, 'api.yaml');
  writeFileSync(serve, `model_name_or_path: ${trained}\ntemplate: default\ndo_sample: false\nmax_new_tokens: 64\n`);
  server = spawn(process.execPath, [...lmfEntry(), 'api', serve, '--port', '0'], {
    env: { ...process.env, API_KEY: key },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  baseURL = await new Promise<string>((resolve, reject) => {
    let out = '';
    server.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    server.once('exit', (code) => reject(new Error(`lmf api exited with ${code}`)));
  });
});

after(() => {
  server?.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
});

const client = () => new OpenAI({ baseURL, apiKey: key, maxRetries: 0 });
const hello = 'Hello! How can I help you today?';

test('models, a plain completion with usage, and a streamed one', async () => {
  const models = await client().models.list();
  assert.deepEqual(
    models.data.map((m) => m.id),
    ['trained'],
  );
  const r = await client().chat.completions.create({
    model: 'trained',
    messages: [{ role: 'user', content: 'Say hello.' }],
    tools,
  });
  assert.equal(r.choices[0].message.content, hello);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.ok(r.usage!.prompt_tokens > 10 && r.usage!.completion_tokens > 5);
  assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + r.usage!.completion_tokens);

  const plain = await client().chat.completions.create({
    model: 'trained',
    messages: [{ role: 'user', content: 'Say hello.' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const pieces: string[] = [];
  let finish: string | null = null;
  let usage = 0;
  for await (const chunk of plain) {
    if (chunk.usage) usage = chunk.usage.completion_tokens;
    const choice = chunk.choices[0];
    if (!choice) continue;
    if (choice.delta.content) pieces.push(choice.delta.content);
    finish = choice.finish_reason ?? finish;
  }
  assert.ok(pieces.length > 3, 'the answer arrives in several chunks');
  assert.equal(finish, 'stop');
  assert.ok(usage > 0);
  const unstreamed = await client().chat.completions.create({
    model: 'trained',
    messages: [{ role: 'user', content: 'Say hello.' }],
  });
  assert.equal(pieces.join(''), unstreamed.choices[0].message.content);
});

test('a tool call, then the answer that uses the tool result', async () => {
  const call = await client().chat.completions.create({
    model: 'trained',
    messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
    tools,
  });
  const choice = call.choices[0];
  assert.equal(choice.finish_reason, 'tool_calls');
  const tc = choice.message.tool_calls![0] as { id: string; function: { name: string; arguments: string } };
  assert.equal(tc.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(tc.function.arguments), { city: 'Paris' });
  const answer = await client().chat.completions.create({
    model: 'trained',
    tools,
    messages: [
      { role: 'user', content: 'What is the weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [tc as never] },
      { role: 'tool', tool_call_id: tc.id, content: '{"temperature_c": 18, "sky": "cloudy"}' },
    ],
  });
  assert.equal(answer.choices[0].message.content, 'It is 18 °C and cloudy in Paris.');
});

test('a wrong API key gets 401, a bad body 400, both as OpenAI error JSON', async () => {
  const wrong = new OpenAI({ baseURL, apiKey: 'sk-wrong', maxRetries: 0 });
  await assert.rejects(
    wrong.models.list(),
    (e: InstanceType<typeof OpenAI.APIError>) => e.status === 401 && e.code === 'invalid_api_key',
  );
  await assert.rejects(
    client().chat.completions.create({ model: 'trained', messages: [] }),
    (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400 && e.param === 'messages',
  );
  await assert.rejects(
    client().chat.completions.create({ model: 'trained', messages: [{ role: 'user', content: 'x' }], temperature: 7 }),
    (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400 && /temperature/.test(e.message),
  );
  const raw = await fetch(`${baseURL}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: '{"messages": [',
  });
  assert.equal(raw.status, 400);
  assert.equal(((await raw.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
});

test('a client that disconnects mid-stream cancels its generation; the server keeps serving', async () => {
  const health = async () =>
    (await (await fetch(baseURL.replace(/\/v1$/, '/health'))).json()) as { active: number; queued: number };
  const stream = await client().chat.completions.create({
    model: 'trained',
    messages: [{ role: 'user', content: 'Tell me everything.' }],
    stream: true,
    temperature: 2,
    max_tokens: 1900,
    seed: 3,
  });
  let chunks = 0;
  for await (const _ of stream) if (++chunks === 5) break; // breaking out aborts the request
  const t0 = Date.now();
  while ((await health()).active > 0) {
    assert.ok(Date.now() - t0 < 1000, 'the generation was not cancelled');
    await new Promise((r) => setTimeout(r, 20));
  }
  const again = await client().chat.completions.create({
    model: 'trained',
    messages: [{ role: 'user', content: 'Say hello.' }],
    tools,
  });
  assert.equal(again.choices[0].message.content, hello);
});

test('32 concurrent streams all finish with the right answer', async () => {
  const one = async () => {
    const s = await client().chat.completions.create({
      model: 'trained',
      messages: [{ role: 'user', content: 'Say hello.' }],
      tools,
      stream: true,
    });
    let text = '';
    for await (const chunk of s) text += chunk.choices[0]?.delta.content ?? '';
    return text;
  };
  const answers = await Promise.all(Array.from({ length: 32 }, one));
  assert.deepEqual(answers, new Array(32).fill(hello));
});

test('in-process: a full queue answers 429 with Retry-After; an oversized body 413', async () => {
  const m = loadInference({ model: trained, template: 'default' });
  const app = buildApiServer(m, {
    modelName: 'trained',
    settings: mergeSettings({ doSample: true, temperature: 2 }),
    maxActive: 1,
    maxQueued: 0,
    bodyLimit: 4096,
  });
  const long = app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    payload: { messages: [{ role: 'user', content: 'Go on.' }], max_tokens: 300, seed: 1 },
  });
  await new Promise((r) => setImmediate(r));
  const busy = await app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    payload: { messages: [{ role: 'user', content: 'Hi' }] },
  });
  assert.equal(busy.statusCode, 429);
  assert.equal(busy.headers['retry-after'], '1');
  assert.equal(busy.json().error.type, 'rate_limit_error');
  assert.equal((await long).statusCode, 200);
  const huge = await app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    payload: { messages: [{ role: 'user', content: 'x'.repeat(10000) }] },
  });
  assert.equal(huge.statusCode, 413);
  assert.ok(huge.json().error.message);
  await app.close();
  m.dispose();
});

test('lmf chat: streamed answers with history, "clear" and "exit" from piped input', () => {
  const config = path.join(work, 'chat.yaml');
  writeFileSync(config, `model_name_or_path: ${trained}\ntemplate: default\ndo_sample: false\nmax_new_tokens: 24\n`);
  const r = spawnSync(process.execPath, [...lmfEntry(), 'chat', config], {
    input: 'How many euros are 20 dollars?\nclear\nSay hello.\nexit\n',
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.match(/Assistant: /g)?.length, 2);
  assert.match(r.stdout, /History has been removed\./);
});

test('lmf chat with quantization_bit: 4 serves the model from its 4-bit codes', () => {
  const config = path.join(work, 'chat-nf4.yaml');
  writeFileSync(
    config,
    `model_name_or_path: ${trained}\ntemplate: default\ndo_sample: false\nmax_new_tokens: 24\nquantization_bit: 4\n`,
  );
  const r = spawnSync(process.execPath, [...lmfEntry(), 'chat', config], {
    input: 'How many euros are 20 dollars?\nexit\n',
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  const answer = /Assistant: (.*)/.exec(r.stdout)?.[1] ?? '';
  assert.ok(answer.trim().length > 0, r.stdout);
});
