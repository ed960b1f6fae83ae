"""PyTorch reference for Qwen3.5's text model (Qwen3_5ForConditionalGeneration's language model, or
Qwen3_5ForCausalLM), written from the published architecture (transformers' qwen3_5 and qwen3_next modeling files,
read, not copied), operation by operation, independent of LMFactory's TypeScript:

  layers         layer_types: three Gated DeltaNet ("linear_attention") layers, then one full-attention layer
                 (full_attention_interval 4); each followed by the SwiGLU MLP; norms x * rsqrt(mean x^2 + eps) *
                 (1 + w) in fp32 (input, post_attention, final, q_norm, k_norm)
  gated attention
                 q_proj yields 2 * head_dim per head: the query, then a gate; q_norm/k_norm over head_dim; partial
                 rotary (the first head_dim * partial_rotary_factor values of each head, rotate-half pairs; text
                 positions make the multimodal rope one-dimensional); GQA; output * sigmoid(gate) before o_proj
  Gated DeltaNet in_proj_qkv -> causal depthwise conv1d (kernel linear_conv_kernel_dim, no bias) -> SiLU -> q, k, v;
                 q and k L2-normalised (x * rsqrt(sum x^2 + 1e-6)), q scaled by key_dim^-0.5; value head h reads key
                 head h // (value heads / key heads); beta = sigmoid(in_proj_b x); decay g = -exp(A_log) *
                 softplus(in_proj_a x + dt_bias); the gated delta rule S_t = e^g S_{t-1} + k (beta (v - (e^g
                 S_{t-1})^T k))^T, o_t = S_t^T q; RMSNorm over value_dim (weight w, no offset) times silu(in_proj_z
                 x); out_proj. Padded positions (attention_mask 0) are zeroed before the layer, as HF does.

Two forms of the delta rule: `chunked` (blocks of 64 tokens, the within-block updates solved as one unit-lower-
triangular system, the state carried between blocks: the form HF trains with) and `recurrent` (token by token: the
form HF decodes with). `python3 qwen35_ref.py` checks that they agree."""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F

CHUNK = 64


def resolve(cfg):
    """Qwen3_5TextConfig's defaults for the keys a config may leave out."""
    c = dict(cfg)
    rp = dict(c.get("rope_parameters") or {})
    c.setdefault("rope_theta", rp.get("rope_theta", 10000.0))
    c.setdefault("partial_rotary_factor", rp.get("partial_rotary_factor", 0.25))
    c.setdefault("head_dim", 256)
    c.setdefault("rms_norm_eps", 1e-6)
    c.setdefault("linear_conv_kernel_dim", 4)
    c.setdefault("linear_key_head_dim", 128)
    c.setdefault("linear_value_head_dim", 128)
    c.setdefault("linear_num_key_heads", 16)
    c.setdefault("linear_num_value_heads", 32)
    c.setdefault("tie_word_embeddings", False)
    c.setdefault("pad_token_id", None)
    if c.get("layer_types") is None:
        n = c.get("full_attention_interval", 4)
        c["layer_types"] = ["full_attention" if (i + 1) % n == 0 else "linear_attention"
                            for i in range(c["num_hidden_layers"])]
    return c


class ZeroCenteredRMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(d)); self.eps = eps

    def forward(self, x):
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * (1.0 + self.weight.float())).to(x.dtype)


class GatedRMSNorm(nn.Module):
    """RMSNorm of x (weight w, no offset), then times silu(gate), in fp32."""
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d)); self.eps = eps

    def forward(self, x, gate):
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        y = self.weight * y.to(x.dtype)
        return (y * F.silu(gate.float())).to(x.dtype)


def l2_normalise(x, eps=1e-6):
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + eps)


def prepare(q, k, v, g, beta):
    """[B, T, H*, d] inputs -> fp32 [B, Hv, T, d] with q/k normalised, q scaled, key heads repeated per value head."""
    hv = v.shape[2]
    if k.shape[2] != hv:
        q = q.repeat_interleave(hv // q.shape[2], dim=2); k = k.repeat_interleave(hv // k.shape[2], dim=2)
    q, k, v = (x.transpose(1, 2).float() for x in (q, k, v))
    g, beta = (x.transpose(1, 2).float() for x in (g, beta))
    q = l2_normalise(q) * q.shape[-1] ** -0.5
    k = l2_normalise(k)
    return q, k, v, g, beta


def recurrent(q, k, v, g, beta, state=None):
    """Token by token. Returns the output [B, T, Hv, dv] and the final state [B, Hv, dk, dv]."""
    q, k, v, g, beta = prepare(q, k, v, g, beta)
    B, H, T, dk = k.shape; dv = v.shape[-1]
    S = torch.zeros(B, H, dk, dv) if state is None else state.float().clone()
    out = torch.empty(B, H, T, dv)
    for t in range(T):
        S = S * g[:, :, t].exp()[..., None, None]
        recalled = torch.einsum("bhkv,bhk->bhv", S, k[:, :, t])
        delta = beta[:, :, t, None] * (v[:, :, t] - recalled)
        S = S + k[:, :, t, :, None] * delta[:, :, None, :]
        out[:, :, t] = torch.einsum("bhkv,bhk->bhv", S, q[:, :, t])
    return out.transpose(1, 2), S


def chunked(q, k, v, g, beta, state=None, size=CHUNK):
    """Blocks of `size` tokens: within a block, u = (I + A)^-1 (beta v - beta e^G K S0) with A[i, j] =
    beta_i e^(G_i - G_j) k_i.k_j for j < i (G the cumulative decay in the block) gives the values the delta rule
    writes; the block's output reads the entering state and the block's own writes; the state moves on once."""
    q, k, v, g, beta = prepare(q, k, v, g, beta)
    B, H, T, dk = k.shape; dv = v.shape[-1]
    pad = (-T) % size
    q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
    g, beta = (F.pad(x, (0, pad)) for x in (g, beta))
    S = torch.zeros(B, H, dk, dv) if state is None else state.float().clone()
    out = torch.empty(B, H, T + pad, dv)
    below = torch.ones(size, size, dtype=torch.bool).tril(-1)
    upto = torch.ones(size, size, dtype=torch.bool).tril(0)
    for s in range(0, T + pad, size):
        qc, kc, vc = q[:, :, s:s + size], k[:, :, s:s + size], v[:, :, s:s + size]
        G = g[:, :, s:s + size].cumsum(-1)
        bc = beta[:, :, s:s + size, None]
        gap = G[..., :, None] - G[..., None, :]
        decay_below = torch.where(below, gap, torch.full_like(gap, -math.inf)).exp()
        decay_upto = torch.where(upto, gap, torch.full_like(gap, -math.inf)).exp()
        system = torch.eye(size) + (bc * kc) @ kc.transpose(-1, -2) * decay_below
        rhs = bc * vc - (bc * G.exp()[..., None] * kc) @ S
        u = torch.linalg.solve_triangular(system, rhs, upper=False, unitriangular=True)
        out[:, :, s:s + size] = (qc * G.exp()[..., None]) @ S + (qc @ kc.transpose(-1, -2) * decay_upto) @ u
        last = G[..., -1:]
        S = S * last.exp()[..., None] + ((last - G).exp()[..., None] * kc).transpose(-1, -2) @ u
    return out[:, :, :T].transpose(1, 2), S


class GatedDeltaNet(nn.Module):
    def __init__(self, c, form="chunked"):
        super().__init__()
        d = c["hidden_size"]
        self.hk, self.hv = c["linear_num_key_heads"], c["linear_num_value_heads"]
        self.dk, self.dv = c["linear_key_head_dim"], c["linear_value_head_dim"]
        conv_dim = 2 * self.hk * self.dk + self.hv * self.dv
        self.kernel = c["linear_conv_kernel_dim"]
        self.form = form
        self.in_proj_qkv = nn.Linear(d, conv_dim, bias=False)
        self.in_proj_z = nn.Linear(d, self.hv * self.dv, bias=False)
        self.in_proj_b = nn.Linear(d, self.hv, bias=False)
        self.in_proj_a = nn.Linear(d, self.hv, bias=False)
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, self.kernel, groups=conv_dim, bias=False, padding=self.kernel - 1)
        self.dt_bias = nn.Parameter(torch.ones(self.hv))
        self.A_log = nn.Parameter(torch.zeros(self.hv))
        self.norm = GatedRMSNorm(self.dv, c["rms_norm_eps"])
        self.out_proj = nn.Linear(self.hv * self.dv, d, bias=False)

    def forward(self, x, mask=None):
        if mask is not None:
            x = (x * mask[:, :, None]).to(x.dtype)
        B, T, _ = x.shape
        mixed = self.in_proj_qkv(x).transpose(1, 2)
        mixed = F.silu(F.conv1d(mixed, self.conv1d.weight, padding=self.kernel - 1, groups=mixed.shape[1])[..., :T])
        mixed = mixed.transpose(1, 2)
        kd = self.hk * self.dk
        q = mixed[..., :kd].reshape(B, T, self.hk, self.dk)
        k = mixed[..., kd:2 * kd].reshape(B, T, self.hk, self.dk)
        v = mixed[..., 2 * kd:].reshape(B, T, self.hv, self.dv)
        beta = self.in_proj_b(x).sigmoid()
        g = -self.A_log.float().exp() * F.softplus(self.in_proj_a(x).float() + self.dt_bias)
        rule = chunked if self.form == "chunked" else recurrent
        core, _ = rule(q, k, v, g, beta)
        z = self.in_proj_z(x).reshape(B, T, self.hv, self.dv)
        y = self.norm(core.to(x.dtype), z).reshape(B, T, self.hv * self.dv)
        return self.out_proj(y)


def rotate_half(x):
    a, b = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-b, a), dim=-1)


class GatedAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.h, self.kv, self.hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        self.q_proj = nn.Linear(d, self.h * self.hd * 2, bias=False)
        self.k_proj = nn.Linear(d, self.kv * self.hd, bias=False)
        self.v_proj = nn.Linear(d, self.kv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.h * self.hd, d, bias=False)
        self.q_norm = ZeroCenteredRMSNorm(self.hd, c["rms_norm_eps"])
        self.k_norm = ZeroCenteredRMSNorm(self.hd, c["rms_norm_eps"])

    def forward(self, x, cos, sin, mask=None):
        B, T, _ = x.shape
        qg = self.q_proj(x).view(B, T, self.h, 2 * self.hd)
        q, gate = qg[..., :self.hd], qg[..., self.hd:].reshape(B, T, self.h * self.hd)
        q = self.q_norm(q).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(B, T, self.kv, self.hd)).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.kv, self.hd).transpose(1, 2)
        r = cos.shape[-1]
        q = torch.cat([q[..., :r] * cos + rotate_half(q[..., :r]) * sin, q[..., r:]], -1)
        k = torch.cat([k[..., :r] * cos + rotate_half(k[..., :r]) * sin, k[..., r:]], -1)
        rep = self.h // self.kv
        k = k.repeat_interleave(rep, dim=1); v = v.repeat_interleave(rep, dim=1)
        s = (q @ k.transpose(2, 3)) * self.hd ** -0.5
        i = torch.arange(T)[:, None]; j = torch.arange(T)[None, :]
        hidden = (j > i)[None, None]
        if mask is not None:
            hidden = hidden | (mask[:, None, None, :] == 0)
        s = s.masked_fill(hidden, torch.finfo(s.dtype).min)
        p = F.softmax(s, dim=-1, dtype=torch.float32).to(q.dtype)
        y = (p @ v).transpose(1, 2).reshape(B, T, self.h * self.hd)
        return self.o_proj(y * torch.sigmoid(gate))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, n = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(d, n, bias=False); self.up_proj = nn.Linear(d, n, bias=False)
        self.down_proj = nn.Linear(n, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c, i, form):
        super().__init__()
        d, eps = c["hidden_size"], c["rms_norm_eps"]
        self.linear = c["layer_types"][i] == "linear_attention"
        if self.linear:
            self.linear_attn = GatedDeltaNet(c, form)
        else:
            self.self_attn = GatedAttention(c)
        self.mlp = MLP(c)
        self.input_layernorm = ZeroCenteredRMSNorm(d, eps)
        self.post_attention_layernorm = ZeroCenteredRMSNorm(d, eps)

    def forward(self, x, cos, sin, mask):
        h = self.input_layernorm(x)
        x = x + (self.linear_attn(h, mask) if self.linear else self.self_attn(h, cos, sin, mask))
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    def __init__(self, c, form):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"], padding_idx=c["pad_token_id"])
        self.layers = nn.ModuleList([Layer(c, i, form) for i in range(c["num_hidden_layers"])])
        self.norm = ZeroCenteredRMSNorm(c["hidden_size"], c["rms_norm_eps"])


class Qwen35CausalLM(nn.Module):
    """The text model; `form` picks the delta rule's form (chunked for training, recurrent to cross-check)."""
    def __init__(self, cfg, form="chunked"):
        super().__init__()
        self.c = c = resolve(cfg)
        self.model = Inner(c, form)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        if c["tie_word_embeddings"]:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.rotary = int(c["head_dim"] * c["partial_rotary_factor"])

    def rope(self, T, dtype):
        inv = 1.0 / (self.c["rope_theta"] ** (torch.arange(0, self.rotary, 2, dtype=torch.int64).float() / self.rotary))
        f = torch.outer(torch.arange(T, dtype=torch.float32), inv)
        emb = torch.cat((f, f), -1)
        return emb.cos().to(dtype)[None, None], emb.sin().to(dtype)[None, None]

    def forward(self, input_ids, labels=None, attention_mask=None):
        B, T = input_ids.shape
        x = self.model.embed_tokens(input_ids)
        cos, sin = self.rope(T, x.dtype)
        for layer in self.model.layers:
            x = layer(x, cos, sin, attention_mask)
        logits = self.lm_head(self.model.norm(x)).float()
        if labels is None:
            return logits, None
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)
        return logits, loss


def _self_check():
    torch.manual_seed(0)
    B, T, hk, hv, dk, dv = 2, 150, 2, 4, 16, 12
    q, k = torch.randn(B, T, hk, dk), torch.randn(B, T, hk, dk)
    v = torch.randn(B, T, hv, dv)
    g = -torch.rand(B, T, hv) * 0.2
    beta = torch.rand(B, T, hv)
    s0 = torch.randn(B, hv, dk, dv) * 0.1
    a, sa = recurrent(q, k, v, g, beta, s0)
    b, sb = chunked(q, k, v, g, beta, s0)
    print("chunked vs recurrent: out", float((a - b).abs().max()), "state", float((sa - sb).abs().max()))


if __name__ == "__main__":
    _self_check()
