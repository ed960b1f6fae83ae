"""PyTorch reference for the model families beyond LLaMA, written from Hugging Face transformers' modeling files
(eager attention path), operation by operation, independent of LMFactory's TypeScript:

  qwen3        Qwen3ForCausalLM: LLaMA + RMSNorm over head_dim on q and k before RoPE (q_norm, k_norm)
  gemma3_text  Gemma3ForCausalLM: embeddings * sqrt(hidden) (cast to the weights' dtype), Gemma3RMSNorm
               (x * rsqrt(mean x^2 + eps) * (1 + w), in fp32), q_norm/k_norm, four norms per layer
               (input, post_attention, pre_feedforward, post_feedforward), scores * query_pre_attn_scalar**-0.5,
               sliding-window layers (key j visible to query i when i - j < sliding_window) with the local rope
               base rope_local_base_freq, global layers with rope_theta and rope_scaling, gelu_pytorch_tanh GeGLU
  gemma2       Gemma2ForCausalLM: as Gemma 3 without q/k norms, one rope, every other layer local, attention
               scores soft-capped (cap * tanh(s / cap)) before the mask, final logits soft-capped
  phi3         Phi3ForCausalLM: fused qkv_proj and gate_up_proj (gate first), partial rotary (first
               head_dim * partial_rotary_factor values of each head turn), longrope (short factors up to
               original_max_position_embeddings, long ones past it; cos and sin times the attention factor),
               sliding window when set
  smollm3      SmolLM3ForCausalLM: LLaMA whose layers with no_rope_layers[i] == 0 skip the rotation

Loss: logits.float(), mean cross-entropy of logits[:, :-1] against labels[:, 1:], -100 ignored (HF's shift).
Needs only Debian's python3-torch; reads and writes safetensors with ../../../shared/reference/torch/llama_ref.py."""
import json, math, os, sys
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "reference", "torch"))
from llama_ref import load_safetensors, save_safetensors  # noqa: E402


def resolve(cfg):
    """HF config class defaults for the keys a config may leave out, and per-layer settings."""
    c = dict(cfg)
    mt = c["model_type"]
    c.setdefault("num_key_value_heads", c["num_attention_heads"])
    if c.get("head_dim") is None:
        c["head_dim"] = c["hidden_size"] // c["num_attention_heads"]
    c.setdefault("rms_norm_eps", 1e-6)
    c.setdefault("rope_theta", 10000.0)
    c.setdefault("rope_scaling", None)
    c.setdefault("tie_word_embeddings", False)
    c.setdefault("attention_bias", False)
    c.setdefault("pad_token_id", None)
    L = c["num_hidden_layers"]
    if mt == "gemma3_text":
        if c.get("layer_types") is None:
            p = c.get("sliding_window_pattern", 6)
            c["layer_types"] = ["sliding_attention" if (i + 1) % p else "full_attention" for i in range(L)]
    elif mt == "gemma2":
        c["layer_types"] = c.get("layer_types") or ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(L)]
    elif mt == "phi3":
        c["layer_types"] = ["sliding_attention" if c.get("sliding_window") else "full_attention"] * L
    else:
        c["layer_types"] = ["full_attention"] * L
    if mt == "smollm3" and c.get("no_rope_layers") is None:
        k = c.get("no_rope_layer_interval", 4)
        c["no_rope_layers"] = [int((i + 1) % k != 0) for i in range(L)]
    return c


# --------------------------------------------------------------------------------------------------- rotary
def default_inv_freq(theta, dim):
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


class Rotary:
    """cos/sin [T, dim] for positions 0..T-1; `scaling` per HF rope init functions (linear, dynamic, yarn,
    longrope). Dynamic NTK grows its base when T passes max_position_embeddings (HF's dynamic_rope_update)."""
    def __init__(self, c, theta, scaling, dim):
        self.c, self.theta, self.scaling, self.dim = c, theta, scaling, dim

    def inv_freq_and_factor(self, seq_len):
        s, dim = self.scaling, self.dim
        kind = None if s is None else s.get("rope_type", s.get("type"))
        if kind in (None, "default"):
            return default_inv_freq(self.theta, dim), 1.0
        if kind == "linear":
            return default_inv_freq(self.theta, dim) / s["factor"], 1.0
        if kind == "dynamic":
            mp, factor = self.c["max_position_embeddings"], s["factor"]
            L = max(seq_len, mp)
            base = self.theta * ((factor * L / mp) - (factor - 1)) ** (dim / (dim - 2))
            return default_inv_freq(base, dim), 1.0
        if kind == "yarn":
            orig = s.get("original_max_position_embeddings") or self.c["max_position_embeddings"]
            factor = s.get("factor") or self.c["max_position_embeddings"] / orig
            att = s.get("attention_factor")
            if att is None:
                att = 1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0
            fast, slow = s.get("beta_fast") or 32, s.get("beta_slow") or 1
            corr = lambda turns: (dim * math.log(orig / (turns * 2 * math.pi))) / (2 * math.log(self.theta))
            low, high = corr(fast), corr(slow)
            if s.get("truncate", True):
                low, high = math.floor(low), math.ceil(high)
            low, high = max(low, 0), min(high, dim - 1)
            if low == high:
                high += 0.001
            ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
            keep = 1 - ramp
            pos = self.theta ** (torch.arange(0, dim, 2).float() / dim)
            return (1.0 / (factor * pos)) * (1 - keep) + (1.0 / pos) * keep, att
        if kind == "longrope":
            if "original_max_position_embeddings" in self.c:
                orig = self.c["original_max_position_embeddings"]
                factor = self.c["max_position_embeddings"] / orig
            else:
                orig = self.c["max_position_embeddings"]
                factor = s["factor"]
            att = s.get("attention_factor")
            if att is None:
                att = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(orig))
            ext = torch.tensor(s["long_factor"] if seq_len > orig else s["short_factor"], dtype=torch.float32)
            shape = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
            return 1.0 / (ext * self.theta ** shape), att
        raise ValueError(f"rope type {kind}")

    def __call__(self, T, dtype):
        inv, att = self.inv_freq_and_factor(T)
        freqs = torch.outer(torch.arange(T, dtype=torch.float32), inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos() * att, emb.sin() * att
        return cos.to(dtype)[None, None], sin.to(dtype)[None, None]


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x, cos, sin):
    r = cos.shape[-1]
    rot, rest = x[..., :r], x[..., r:]
    return torch.cat([rot * cos + rotate_half(rot) * sin, rest], dim=-1)


# ----------------------------------------------------------------------------------------------------- norms
class RMSNorm(nn.Module):
    """LlamaRMSNorm (offset 0) or Gemma's (offset 1: weight stored around zero, applied as 1 + w in fp32)."""
    def __init__(self, d, eps, offset):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(d) if offset else torch.ones(d)); self.eps = eps; self.offset = offset

    def forward(self, x):
        dt = x.dtype
        xf = x.float() if dt != torch.float64 else x
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.offset:
            return (y * (1.0 + self.weight.to(y.dtype))).to(dt)
        return self.weight * y.to(dt)


# --------------------------------------------------------------------------------------------------- blocks
class Attention(nn.Module):
    def __init__(self, c, i):
        super().__init__()
        mt = c["model_type"]
        self.mt, self.h, self.kv, self.hd = mt, c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        d, b = c["hidden_size"], c["attention_bias"]
        gemma = mt in ("gemma3_text", "gemma2")
        self.scaling = c["query_pre_attn_scalar"] ** -0.5 if gemma else self.hd ** -0.5
        self.softcap = c.get("attn_logit_softcapping") if mt == "gemma2" else None
        self.window = c.get("sliding_window") if c["layer_types"][i] == "sliding_attention" else None
        self.use_rope = bool(c["no_rope_layers"][i]) if mt == "smollm3" else True
        if mt == "phi3":
            self.qkv_proj = nn.Linear(d, (self.h + 2 * self.kv) * self.hd, bias=False)
        else:
            self.q_proj = nn.Linear(d, self.h * self.hd, bias=b)
            self.k_proj = nn.Linear(d, self.kv * self.hd, bias=b)
            self.v_proj = nn.Linear(d, self.kv * self.hd, bias=b)
        self.o_proj = nn.Linear(self.h * self.hd, d, bias=b and mt != "phi3")
        if mt in ("qwen3", "gemma3_text"):
            off = 1 if gemma else 0
            self.q_norm = RMSNorm(self.hd, c["rms_norm_eps"], off)
            self.k_norm = RMSNorm(self.hd, c["rms_norm_eps"], off)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        if self.mt == "phi3":
            qkv = self.qkv_proj(x)
            qp, kp = self.h * self.hd, self.kv * self.hd
            q, k, v = qkv[..., :qp], qkv[..., qp:qp + kp], qkv[..., qp + kp:]
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q = q.view(B, T, self.h, self.hd)
        k = k.view(B, T, self.kv, self.hd)
        if hasattr(self, "q_norm"):
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        v = v.view(B, T, self.kv, self.hd).transpose(1, 2)
        if self.use_rope:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        rep = self.h // self.kv
        k = k[:, :, None].expand(B, self.kv, rep, T, self.hd).reshape(B, self.h, T, self.hd)
        v = v[:, :, None].expand(B, self.kv, rep, T, self.hd).reshape(B, self.h, T, self.hd)
        s = torch.matmul(q, k.transpose(2, 3)) * self.scaling
        if self.softcap:
            s = torch.tanh(s / self.softcap) * self.softcap
        i = torch.arange(T)[:, None]; j = torch.arange(T)[None, :]
        hidden = j > i
        if self.window:
            hidden = hidden | (i - j >= self.window)
        s = s.masked_fill(hidden[None, None], torch.finfo(s.dtype).min)
        p = F.softmax(s, dim=-1, dtype=torch.float32 if s.dtype != torch.float64 else torch.float64).to(q.dtype)
        y = torch.matmul(p, v).transpose(1, 2).reshape(B, T, self.h * self.hd)
        return self.o_proj(y)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, n = c["hidden_size"], c["intermediate_size"]
        self.mt = c["model_type"]
        if self.mt == "phi3":
            self.gate_up_proj = nn.Linear(d, 2 * n, bias=False)
        else:
            self.gate_proj = nn.Linear(d, n, bias=False); self.up_proj = nn.Linear(d, n, bias=False)
        self.down_proj = nn.Linear(n, d, bias=False)
        self.act = (lambda x: F.gelu(x, approximate="tanh")) if self.mt in ("gemma3_text", "gemma2") else F.silu

    def forward(self, x):
        if self.mt == "phi3":
            gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
            return self.down_proj(up * self.act(gate))
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c, i):
        super().__init__()
        d, eps = c["hidden_size"], c["rms_norm_eps"]
        self.gemma = c["model_type"] in ("gemma3_text", "gemma2")
        off = 1 if self.gemma else 0
        self.local = c["layer_types"][i] == "sliding_attention"
        self.input_layernorm = RMSNorm(d, eps, off)
        self.self_attn = Attention(c, i)
        self.post_attention_layernorm = RMSNorm(d, eps, off)
        if self.gemma:
            self.pre_feedforward_layernorm = RMSNorm(d, eps, off)
            self.post_feedforward_layernorm = RMSNorm(d, eps, off)
        self.mlp = MLP(c)

    def forward(self, x, rope_global, rope_local):
        cos, sin = rope_local if self.local else rope_global
        if self.gemma:
            a = self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), cos, sin))
            x = x + a
            return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    def __init__(self, c):
        super().__init__()
        off = 1 if c["model_type"] in ("gemma3_text", "gemma2") else 0
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"], padding_idx=c["pad_token_id"])
        self.layers = nn.ModuleList([Layer(c, i) for i in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"], off)


class CausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c = c = resolve(cfg)
        self.model = Inner(c)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        if c["tie_word_embeddings"]:
            self.lm_head.weight = self.model.embed_tokens.weight
        mt, hd = c["model_type"], c["head_dim"]
        rot = int(hd * c.get("partial_rotary_factor", 1.0)) if mt == "phi3" else hd
        scaling = c["rope_scaling"]
        self.rope_global = Rotary(c, c["rope_theta"], scaling, rot)
        local_theta = c.get("rope_local_base_freq", 10000.0) if mt == "gemma3_text" else c["rope_theta"]
        self.rope_local = Rotary(c, local_theta, None if mt == "gemma3_text" else scaling, rot)
        self.final_softcap = c.get("final_logit_softcapping") if mt == "gemma2" else None

    def forward(self, input_ids, labels=None):
        B, T = input_ids.shape
        x = self.model.embed_tokens(input_ids)
        if self.c["model_type"] in ("gemma3_text", "gemma2"):
            x = x * torch.tensor(self.c["hidden_size"] ** 0.5, dtype=x.dtype)
        g, l = self.rope_global(T, x.dtype), self.rope_local(T, x.dtype)
        for layer in self.model.layers:
            x = layer(x, g, l)
        logits = self.lm_head(self.model.norm(x)).float()
        if self.final_softcap:
            logits = torch.tanh(logits / self.final_softcap) * self.final_softcap
        if labels is None:
            return logits, None
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)
        return logits, loss


def load(folder, dtype=torch.float32):
    c = json.load(open(os.path.join(folder, "config.json")))
    m = CausalLM(c)
    sd = load_safetensors(os.path.join(folder, "model.safetensors"))
    if m.c["tie_word_embeddings"]:
        sd.pop("lm_head.weight", None)
    want = set(k for k in m.state_dict() if not (m.c["tie_word_embeddings"] and k == "lm_head.weight"))
    if want != set(sd):
        raise ValueError(f"{folder}: missing {sorted(want - set(sd))[:5]} unexpected {sorted(set(sd) - want)[:5]}")
    m.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=False)
    return m.to(dtype)


def state_dict_for_save(m):
    sd = {k: v.detach() for k, v in m.state_dict().items()}
    if m.c["tie_word_embeddings"]:
        sd.pop("lm_head.weight", None)
    return sd
