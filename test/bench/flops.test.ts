// The model-FLOP count lmf bench divides by time (README: Speed): attention's share, causal and windowed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelConfig } from '../../src/models/config.js';
import { attentionFlopsPerToken } from '../../src/bench/train-step.js';

const base = {
  model_type: 'mistral',
  vocab_size: 32,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
};

test('attention FLOPs per token: 4·heads·head_dim per visible key, a causal query seeing (i + 1) keys, at most the window', () => {
  const full = parseModelConfig({ ...base, sliding_window: null }, 'c.json');
  // T = 4: queries see 1, 2, 3, 4 keys (2.5 on average); heads 2 × head_dim 8
  assert.equal(attentionFlopsPerToken(full, 4), 4 * 2 * 8 * 2.5);
  const windowed = parseModelConfig({ ...base, sliding_window: 2 }, 'c.json');
  // window 2: 1, 2, 2, 2 keys (1.75 on average)
  assert.equal(attentionFlopsPerToken(windowed, 4), 4 * 2 * 8 * 1.75);
});
