/** Shapes of well-known checkpoints (config.json keys), for `lmf bench` without downloading them. Data only. */
export const presets: Record<string, Record<string, unknown>> = {
  'smollm2-135m': {
    model_type: 'llama', vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30,
    num_attention_heads: 9, num_key_value_heads: 3, tie_word_embeddings: true, rms_norm_eps: 1e-5, rope_theta: 100000,
    max_position_embeddings: 8192, bos_token_id: 0, eos_token_id: 0,
  },
  'qwen2.5-0.5b': {
    model_type: 'qwen2', vocab_size: 151936, hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24,
    num_attention_heads: 14, num_key_value_heads: 2, tie_word_embeddings: true, rms_norm_eps: 1e-6, rope_theta: 1000000,
    max_position_embeddings: 32768, bos_token_id: 151643, eos_token_id: 151643,
  },
};
