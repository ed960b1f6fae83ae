"""Shim for ../shared/reference/torch/bench_train.py, which imports CONFIGS and build from make_tiny:
the SmolLM2-135M shape with random weights (normal 0.02, norms 1), the same shape `lmf bench` uses."""
import torch
from llama_ref import LlamaForCausalLM

CONFIGS = {
    "smollm-135m-shape": dict(model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536,
                              num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                              tie_word_embeddings=True, rms_norm_eps=1e-5, rope_theta=100000.0,
                              max_position_embeddings=8192, hidden_act="silu"),
}


def build(name):
    m = LlamaForCausalLM(CONFIGS[name])
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.02)
    return m
