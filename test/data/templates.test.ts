// Named templates against the tokenizers' own chat_template (rendered with @huggingface/jinja) on real
// Qwen3 and Llama-3 tokenizers, and label masking of assistant turns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from '../../src/data/messages.js';
import { encodeSupervised } from '../../src/data/processors/supervised.js';
import { JinjaChatTemplate } from '../../src/data/templates/jinja.js';
import { templateMismatch } from '../../src/data/templates/compare.js';
import { getTemplate } from '../../src/data/templates/registry.js';
import { HfTokenizer } from '../../src/data/tokenizer.js';
import { LmfError } from '../../src/errors.js';
import { lenmlTokenizerDir } from '../helpers.js';

const qwen = HfTokenizer.fromDir(lenmlTokenizerDir('qwen3'));
const llama3 = HfTokenizer.fromDir(lenmlTokenizerDir('llama3'));
const system = 'You are a careful assistant.';
const conversation: Message[] = [
  { role: 'user', content: 'What is the capital of France?' },
  { role: 'assistant', content: 'Paris.' },
  { role: 'user', content: 'And of Italy? Answer in one word, por favor: ¿vale?' },
  { role: 'assistant', content: 'Rome.' },
];
const opts = { cutoffLen: 4096, trainOnPrompt: false, maskHistory: false, enableThinking: true };
const example = {
  prompt: conversation.slice(0, 3),
  response: [conversation[3]],
  system,
  tools: '',
  source: { file: 't', row: 1 },
};

test("llama3: the named template gives the ids of the tokenizer's chat_template, turn by turn", () => {
  const named = getTemplate('llama3').encodeMultiturn(llama3, conversation, { system });
  const jinja = new JinjaChatTemplate(llama3).encodeMultiturn(llama3, conversation, { system });
  assert.deepEqual(named, jinja);
  // this chat_template ends every rendering with an assistant header, even with add_generation_prompt off
  const header = '<|start_header_id|>assistant<|end_header_id|>\n\n';
  const rendered = new JinjaChatTemplate(llama3).render(conversation, { system, addGenerationPrompt: false });
  assert.ok(rendered.endsWith(`Rome.<|eot_id|>${header}`));
  assert.deepEqual(
    named.flatMap(([s, t]) => [...s, ...t]),
    llama3.encode(rendered.slice(0, -header.length)),
  );
  assert.equal(llama3.decode(named[0][1]), 'Paris.<|eot_id|>');
});

test('qwen3: named template vs chat_template, with the reasoning difference spelled out', () => {
  const named = getTemplate('qwen3')
    .encodeMultiturn(qwen, conversation, { system, enableThinking: true })
    .flatMap(([s, t]) => [...s, ...t]);
  const rendered = new JinjaChatTemplate(qwen).render(conversation, { system, addGenerationPrompt: false });
  // Qwen3's chat_template gives only the last answer an (empty) <think> block; LLaMA-Factory's qwen3 template
  // trains every answer with one. Adding the block to the earlier answer makes the two identical.
  const emptyThink = '<think>\n\n</think>\n\n';
  assert.ok(rendered.includes(`<|im_start|>assistant\nParis.`));
  assert.ok(rendered.includes(`<|im_start|>assistant\n${emptyThink}Rome.`));
  const aligned = rendered.replace('<|im_start|>assistant\nParis.', `<|im_start|>assistant\n${emptyThink}Paris.`);
  assert.deepEqual(named, qwen.encode(aligned));
  // with thinking off (qwen3_nothink) no block appears in the answers at all
  const nothink = getTemplate('qwen3_nothink')
    .encodeMultiturn(qwen, conversation, { system })
    .flatMap(([s, t]) => [...s, ...t]);
  assert.ok(!qwen.decode(nothink).includes('<think>'));
});

test('qwen3 chat_template, turn by turn: every answer as it stands inside a longer conversation', () => {
  const pairs = new JinjaChatTemplate(qwen).encodeMultiturn(qwen, conversation, { system });
  // the chat_template adds an empty <think> block only to a final answer; split into turns, no answer is
  // final, so none gets one (the named qwen3 template trains one on every answer, qwen3_nothink on none)
  assert.deepEqual(
    pairs.map(([, t]) => qwen.decode(t)),
    ['Paris.<|im_end|>\n', 'Rome.<|im_end|>\n'],
  );
  assert.deepEqual(pairs, getTemplate('qwen3_nothink').encodeMultiturn(qwen, conversation, { system }));
});

test('a chat_template that rewrites earlier turns cannot be split, and the error says what to do', () => {
  const tok = Object.create(qwen) as HfTokenizer;
  Object.defineProperty(tok, 'chatTemplate', {
    value: '{% for m in messages %}{{ m.content if loop.last else m.content | upper }}{% endfor %}',
  });
  assert.throws(
    () => new JinjaChatTemplate(tok).encodeMultiturn(tok, conversation, {}),
    (e: unknown) =>
      e instanceof LmfError && /growing prefix/.test(e.message) && /name a template/.test(e.context.hint ?? ''),
  );
});

for (const [name, tok, tpl] of [
  ['llama3', llama3, 'llama3'],
  ['qwen3', qwen, 'qwen3'],
] as const) {
  test(`${name}: labels mark exactly the assistant tokens and the end-of-turn token`, () => {
    const enc = encodeSupervised(getTemplate(tpl), tok, example, opts);
    assert.equal(enc.ids.length, enc.labels.length);
    const trained = enc.labels.filter((l) => l >= 0);
    const text = tok.decode(trained);
    const end = tpl === 'llama3' ? '<|eot_id|>' : '<|im_end|>\n';
    const think = tpl === 'qwen3' ? '<think>\n\n</think>\n\n' : '';
    assert.equal(text, `${think}Paris.${end}${think}Rome.${end}`);
    // every labelled position holds its own input id (labels are unshifted)
    enc.labels.forEach((l, i) => {
      if (l >= 0) assert.equal(l, enc.ids[i]);
    });
    const masked = encodeSupervised(getTemplate(tpl), tok, example, { ...opts, maskHistory: true });
    assert.equal(tok.decode(masked.labels.filter((l) => l >= 0)), `${think}Rome.${end}`);
    const all = encodeSupervised(getTemplate(tpl), tok, example, { ...opts, trainOnPrompt: true });
    assert.deepEqual(all.labels, all.ids);
  });
}

test('cutoff_len shares the budget between prompt and answer as LLaMA-Factory does', () => {
  const long = {
    ...example,
    prompt: [{ role: 'user' as const, content: 'word '.repeat(300) }],
    response: [{ role: 'assistant' as const, content: 'short answer' }],
  };
  const enc = encodeSupervised(getTemplate('llama3'), llama3, long, { ...opts, cutoffLen: 64 });
  assert.equal(enc.ids.length, 64);
  assert.ok(enc.truncated);
  // a short answer is kept whole; the prompt is cut
  assert.equal(llama3.decode(enc.labels.filter((l) => l >= 0)), 'short answer<|eot_id|>');
});

test('an unknown template name suggests the closest one', () => {
  assert.throws(
    () => getTemplate('llama_3'),
    (e: unknown) => e instanceof LmfError && /did you mean "llama3"/.test(e.context.hint ?? ''),
  );
});

test('every named template renders a conversation on a tokenizer that has its tokens', () => {
  for (const name of [
    'default',
    'empty',
    'alpaca',
    'vicuna',
    'chatml',
    'qwen',
    'qwen3',
    'qwen3_nothink',
    'qwen3_5',
    'qwen3_5_nothink',
    'deepseek',
    'zephyr',
    'smollm',
    'phi4',
  ]) {
    const enc = encodeSupervised(getTemplate(name), qwen, example, opts);
    assert.ok(
      enc.labels.some((l) => l >= 0),
      name,
    );
  }
  for (const name of ['llama3', 'llama2', 'mistral']) {
    const enc = encodeSupervised(getTemplate(name), llama3, example, opts);
    assert.ok(
      enc.labels.some((l) => l >= 0),
      name,
    );
  }
  const phi4 = encodeSupervised(getTemplate('phi4'), qwen, example, opts);
  assert.ok(
    qwen
      .decode(phi4.ids)
      .startsWith(
        `<|im_start|>system<|im_sep|>${system}<|im_end|><|im_start|>user<|im_sep|>What is the capital of France?<|im_end|><|im_start|>assistant<|im_sep|>Paris.<|im_end|>`,
      ),
  );
  const mistral = encodeSupervised(getTemplate('mistral'), llama3, example, opts);
  assert.equal(
    llama3.decode(mistral.ids.slice(0, 40)).startsWith(`<|begin_of_text|>[INST] ${system}\n\nWhat is the capital`),
    true,
  );
});

test("a named template that renders otherwise than the tokenizer's chat_template is named with its first differing turn", () => {
  for (const name of ['qwen', 'qwen3', 'chatml']) assert.equal(templateMismatch(getTemplate(name), qwen), null, name);
  assert.match(
    templateMismatch(getTemplate('llama3'), qwen) ?? '',
    /^template "llama3" renders turn 1's prompt as "<\|start_header_id\|>system.*the tokenizer's chat_template as "<\|im_start\|>system/,
  );
  const llama3 = HfTokenizer.fromDir(lenmlTokenizerDir('llama3'));
  assert.equal(templateMismatch(getTemplate('llama3'), llama3), null);
  assert.match(templateMismatch(getTemplate('mistral'), llama3) ?? '', /template "mistral" renders turn 1's prompt/);
});
