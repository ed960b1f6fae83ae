"""Writes a tiny fixture per model family with golden numbers from families_ref.py.
usage: /usr/bin/python3 golden_families.py OUT_DIR [--preset NAME ...]   (default: every preset)

OUT_DIR/<preset>/
  model/{config.json, model.safetensors}  random weights stored as BF16 (as real checkpoints ship)
  golden.safetensors        input_ids, labels [2,16] (F32 holding integers), logits, loss, grad.<param> (full, fp32)
  lora-adapter/             PEFT adapter: rank 4, alpha 8, on every linear projection of the family, nonzero A and B
  golden_lora.safetensors   the same batch through base + adapter: logits, loss, grad.<PEFT name>
  golden_train.safetensors  five steps each: forward, backward, clip the global gradient norm to 1.0, AdamW
                            (0.9/0.999, eps 1e-8): full.losses/full.grad_norms (lr 1e-3, weight decay 0.01 on
                            matrices only) and lora.losses/lora.grad_norms (the adapter alone, lr 1e-2, no decay)
  golden_dpo.safetensors    DPO sigmoid, beta 0.1, policy = base + adapter, reference = base: the four summed
                            log-probability vectors, loss, grad.<PEFT name> (same layout as llama-tiny's)
Shapes are chosen to exercise each family's options: head_dim != hidden/heads, sequences longer than the sliding
window, partial rotary, longrope past its original length, layers without rotation, YaRN's ramp across the
rotary pairs, dynamic NTK past max_position_embeddings."""
import argparse, json, math, os
import torch
import torch.nn as nn
import torch.nn.functional as F
from families_ref import CausalLM, load, load_safetensors, save_safetensors, state_dict_for_save
from qwen35_ref import Qwen35CausalLM

TINY = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
            torch_dtype="bfloat16")

PRESETS = {
    "qwen3-tiny": dict(TINY, architectures=["Qwen3ForCausalLM"], model_type="qwen3", head_dim=24, rope_theta=1000000.0,
                       rms_norm_eps=1e-6, tie_word_embeddings=True, attention_bias=False, hidden_act="silu",
                       use_sliding_window=False),
    "gemma3-tiny": dict(TINY, architectures=["Gemma3ForCausalLM"], model_type="gemma3_text", num_hidden_layers=3,
                        num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=24, sliding_window=5,
                        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                        rope_theta=1000000.0, rope_local_base_freq=10000.0,
                        rope_scaling={"rope_type": "linear", "factor": 2.0}, rms_norm_eps=1e-6,
                        hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True, pad_token_id=0,
                        final_logit_softcapping=None, attn_logit_softcapping=None),
    "gemma2-tiny": dict(TINY, architectures=["Gemma2ForCausalLM"], model_type="gemma2", head_dim=16,
                        query_pre_attn_scalar=20, sliding_window=6, rope_theta=10000.0, rms_norm_eps=1e-6,
                        hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True, pad_token_id=0,
                        attn_logit_softcapping=5.0, final_logit_softcapping=3.0),
    "phi3-tiny": dict(TINY, architectures=["Phi3ForCausalLM"], model_type="phi3", partial_rotary_factor=0.75,
                      max_position_embeddings=64, original_max_position_embeddings=8, sliding_window=12,
                      rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=False, hidden_act="silu",
                      rope_scaling={"type": "longrope", "short_factor": [1.0, 1.1, 1.3, 1.6, 2.0, 2.5],
                                    "long_factor": [1.0, 1.5, 2.5, 4.0, 6.0, 9.0]}),
    "llama-yarn-tiny": dict(TINY, architectures=["LlamaForCausalLM"], model_type="llama", rope_theta=10000.0,
                            rms_norm_eps=1e-6, tie_word_embeddings=False, hidden_act="silu",
                            rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}),
    "llama-dynamic-tiny": dict(TINY, architectures=["LlamaForCausalLM"], model_type="llama", max_position_embeddings=8,
                               rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, hidden_act="silu",
                               rope_scaling={"type": "dynamic", "factor": 2.0}),
    # Qwen3.5 as released: Qwen3_5ForConditionalGeneration, the text model's keys under text_config, its weights
    # under model.language_model.*, beside vision and multi-token-prediction weights (skipped). Three Gated DeltaNet
    # layers then one gated full-attention layer; more value heads than key heads, dk != dv; the golden batch is
    # longer than one 64-token chunk and its second row is left-padded (attention_mask)
    "qwen3_5-tiny": dict(architectures=["Qwen3_5ForConditionalGeneration"], model_type="qwen3_5",
                         tie_word_embeddings=True, image_token_id=120, video_token_id=121,
                         vision_config=dict(model_type="qwen3_5_vision", depth=1, hidden_size=16, num_heads=2,
                                            out_hidden_size=64),
                         text_config=dict(model_type="qwen3_5_text", vocab_size=128, hidden_size=64,
                                          intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
                                          num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                                          rms_norm_eps=1e-6, hidden_act="silu", linear_conv_kernel_dim=4,
                                          linear_key_head_dim=16, linear_value_head_dim=12, linear_num_key_heads=2,
                                          linear_num_value_heads=4, full_attention_interval=4,
                                          layer_types=["linear_attention"] * 3 + ["full_attention"],
                                          rope_parameters=dict(rope_type="default", rope_theta=10000000.0,
                                                               partial_rotary_factor=0.25, mrope_interleaved=True,
                                                               mrope_section=[1, 1, 0]),
                                          bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=True,
                                          torch_dtype="bfloat16")),
    "smollm3-tiny": dict(TINY, architectures=["SmolLM3ForCausalLM"], model_type="smollm3", num_hidden_layers=4,
                         no_rope_layer_interval=2, rope_theta=2000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                         hidden_act="silu", use_sliding_window=False),
}


PROJECTIONS = ("q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj", "in_proj_qkv", "in_proj_z", "in_proj_b", "in_proj_a",
               "out_proj", "gate_proj", "up_proj", "gate_up_proj", "down_proj")


def linear_modules(m):
    """(PEFT prefix, parent module, attribute) of every linear projection, in layer order."""
    for i, layer in enumerate(m.model.layers):
        parts = [(part, getattr(layer, part)) for part in ("self_attn", "linear_attn", "mlp") if hasattr(layer, part)]
        for part, mod in parts:
            for name in PROJECTIONS:
                if isinstance(getattr(mod, name, None), (nn.Linear, LoRA)):
                    yield f"base_model.model.model.layers.{i}.{part}.{name}", mod, name


class LoRA(nn.Module):
    """PEFT LoRA: base(x) + B(A(x)) * alpha / r, dropout 0."""
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base_layer, self.scaling = base, alpha / r
        self.lora_A = nn.Parameter(torch.zeros(r, base.in_features)); self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))

    def forward(self, x):
        return self.base_layer(x) + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling


def with_lora(m, adapter):
    for p in m.parameters():
        p.requires_grad_(False)
    mods = []
    for pre, parent, name in list(linear_modules(m)):
        l = LoRA(getattr(parent, name), 4, 8)
        with torch.no_grad():
            l.lora_A.copy_(adapter[pre + ".lora_A.weight"]); l.lora_B.copy_(adapter[pre + ".lora_B.weight"])
        setattr(parent, name, l); mods.append((pre, l))
    return mods


def run_steps(m, decay, nodecay, ids, labels, lr, wd, mask=None):
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.999), eps=1e-8)
    losses, norms = [], []
    for _ in range(5):
        _, loss = m(ids, labels, attention_mask=mask); loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_([p for p in m.parameters() if p.requires_grad], 1.0)))
        opt.step(); opt.zero_grad(set_to_none=True); losses.append(float(loss))
    return torch.tensor(losses), torch.tensor(norms)


def seq_logps(m, ids, labels):
    logits, _ = m(ids)
    lp = torch.log_softmax(logits[:, :-1], -1); tgt = labels[:, 1:]
    mask = tgt != -100
    tok = torch.gather(lp, 2, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (tok * mask).sum(-1)


RELEASED_TEXT = "model.language_model."


def is_qwen35(cfg):
    return cfg["model_type"] == "qwen3_5"


def build(cfg):
    if is_qwen35(cfg):
        return Qwen35CausalLM(dict(cfg["text_config"], tie_word_embeddings=cfg["tie_word_embeddings"]))
    return CausalLM(cfg)


def load_model(mdir, cfg):
    """The fixture's model in fp32; a released Qwen3.5 folder's text weights are read from under
    model.language_model.* and the vision and mtp weights left out."""
    if not is_qwen35(cfg):
        return load(mdir)
    m = build(cfg)
    sd = load_safetensors(os.path.join(mdir, "model.safetensors"))
    text = {("model." + k[len(RELEASED_TEXT):] if k.startswith(RELEASED_TEXT) else k): v.float() for k, v in sd.items()
            if k.startswith(RELEASED_TEXT) or k == "lm_head.weight"}
    missing, unexpected = m.load_state_dict(text, strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise ValueError(f"{mdir}: missing {missing[:5]} unexpected {unexpected[:5]}")
    return m


def save_model(m, cfg, mdir):
    sd = state_dict_for_save(m)
    if is_qwen35(cfg):
        sd = {(RELEASED_TEXT + k[len("model."):] if k.startswith("model.") else k): v for k, v in sd.items()}
        g = torch.Generator().manual_seed(99)
        sd["model.visual.patch_embed.proj.weight"] = torch.randn(16, 3, 2, 4, 4, generator=g)
        sd["mtp.fc.weight"] = torch.randn(64, 128, generator=g)
    save_safetensors({k: v.to(torch.bfloat16) for k, v in sd.items()}, os.path.join(mdir, "model.safetensors"),
                     {"format": "pt"})


def initialise(m, cfg):
    zero_centred = cfg["model_type"].startswith("gemma") or is_qwen35(cfg)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith("conv1d.weight"): p.normal_(0, 0.3)
            elif n.endswith("A_log"): p.copy_(torch.empty_like(p).uniform_(0.01, 2.0).log())
            elif n.endswith("dt_bias"): p.normal_(-3.0, 0.5)
            elif p.dim() >= 2: p.normal_(0, 0.05)
            elif n.endswith("linear_attn.norm.weight"): p.normal_(1.0, 0.1)
            elif "norm" in n: p.normal_(0.0 if zero_centred else 1.0, 0.1)
            else: p.normal_(0, 0.05)


def golden_batch(cfg, g):
    """ids, labels and attention_mask (None: no padding). Qwen3.5: 80 tokens (past one 64-token chunk), the
    second row left-padded by 9."""
    if not is_qwen35(cfg):
        ids = torch.randint(3, cfg["vocab_size"], (2, 16), generator=g)
        labels = ids.clone(); labels[:, :4] = -100; labels[1, -3:] = -100
        return ids, labels, None
    T, pad = 80, 9
    ids = torch.randint(3, cfg["text_config"]["vocab_size"], (2, T), generator=g)
    mask = torch.ones(2, T, dtype=torch.long); mask[1, :pad] = 0
    ids[1, :pad] = cfg["text_config"]["pad_token_id"]
    labels = ids.clone(); labels[:, :4] = -100; labels[1, :pad + 4] = -100; labels[0, -3:] = -100
    return ids, labels, mask


def write_fixture(out, preset, seed=0):
    torch.manual_seed(seed)
    cfg = PRESETS[preset]
    m = build(cfg)
    initialise(m, cfg)
    mdir = os.path.join(out, "model"); os.makedirs(mdir, exist_ok=True)
    json.dump(cfg, open(os.path.join(mdir, "config.json"), "w"), indent=2)
    save_model(m, cfg, mdir)
    load = lambda _dir: load_model(_dir, cfg)

    g = torch.Generator().manual_seed(seed + 1)
    ids, labels, mask = golden_batch(cfg, g)
    m = load(mdir)
    logits, loss = m(ids, labels, attention_mask=mask); loss.backward()
    gold = {"input_ids": ids.float(), "labels": labels.float(), "logits": logits.detach(), "loss": loss.detach().reshape(1)}
    if mask is not None:
        gold["attention_mask"] = mask.float()
    for n, p in m.named_parameters():
        gold["grad." + n] = p.grad.detach().clone()
    save_safetensors(gold, os.path.join(out, "golden.safetensors"))

    m = load(mdir)
    adapter = {}
    for pre, parent, name in linear_modules(m):
        lin = getattr(parent, name)
        adapter[pre + ".lora_A.weight"] = torch.randn(4, lin.in_features, generator=g) * 0.1
        adapter[pre + ".lora_B.weight"] = torch.randn(lin.out_features, 4, generator=g) * 0.1
    targets = sorted({pre.rsplit(".", 1)[1] for pre in adapter})
    targets = sorted({k.split(".")[-3] for k in adapter})
    ldir = os.path.join(out, "lora-adapter"); os.makedirs(ldir, exist_ok=True)
    save_safetensors(adapter, os.path.join(ldir, "adapter_model.safetensors"), {"format": "pt"})
    json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
               "target_modules": targets, "bias": "none", "use_rslora": False, "use_dora": False,
               "fan_in_fan_out": False, "base_model_name_or_path": "../model"},
              open(os.path.join(ldir, "adapter_config.json"), "w"), indent=2)
    mods = with_lora(m, adapter)
    logits, loss = m(ids, labels, attention_mask=mask); loss.backward()
    gl = {"input_ids": gold["input_ids"], "labels": gold["labels"], "logits": logits.detach(), "loss": loss.detach().reshape(1)}
    if mask is not None:
        gl["attention_mask"] = gold["attention_mask"]
    for pre, l in mods:
        gl["grad." + pre + ".lora_A.weight"] = l.lora_A.grad.clone(); gl["grad." + pre + ".lora_B.weight"] = l.lora_B.grad.clone()
    save_safetensors(gl, os.path.join(out, "golden_lora.safetensors"))

    m = load(mdir)
    decay = [p for p in m.parameters() if p.dim() >= 2]; nodecay = [p for p in m.parameters() if p.dim() < 2]
    fl, fn = run_steps(m, decay, nodecay, ids, labels, 1e-3, 0.01, mask)
    m = load(mdir); mods = with_lora(m, adapter)
    ll, ln = run_steps(m, [p for _, l in mods for p in (l.lora_A, l.lora_B)], [], ids, labels, 1e-2, 0.0, mask)
    save_safetensors({"full.losses": fl, "full.grad_norms": fn, "lora.losses": ll, "lora.grad_norms": ln},
                     os.path.join(out, "golden_train.safetensors"))

    gen = torch.Generator().manual_seed(123)
    V, P, R = (cfg["text_config"] if is_qwen35(cfg) else cfg)["vocab_size"], 6, 8
    prompt = torch.randint(3, V, (2, P), generator=gen)
    chosen = torch.cat([prompt, torch.randint(3, V, (2, R), generator=gen)], 1)
    rejected = torch.cat([prompt, torch.randint(3, V, (2, R), generator=gen)], 1)
    cl = chosen.clone(); cl[:, :P] = -100
    rl = rejected.clone(); rl[:, :P] = -100; rl[1, -2:] = -100
    ref = load(mdir)
    with torch.no_grad():
        rc, rr = seq_logps(ref, chosen, cl), seq_logps(ref, rejected, rl)
    pol = load(mdir); mods = with_lora(pol, adapter)
    pc, pr = seq_logps(pol, chosen, cl), seq_logps(pol, rejected, rl)
    beta = 0.1
    loss = -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean(); loss.backward()
    dpo = {"chosen_ids": chosen.float(), "chosen_labels": cl.float(), "rejected_ids": rejected.float(),
           "rejected_labels": rl.float(), "policy_chosen_logps": pc.detach(), "policy_rejected_logps": pr.detach(),
           "reference_chosen_logps": rc, "reference_rejected_logps": rr, "loss": loss.detach().reshape(1),
           "beta": torch.tensor([beta])}
    for pre, l in mods:
        dpo["grad." + pre + ".lora_A.weight"] = l.lora_A.grad.clone(); dpo["grad." + pre + ".lora_B.weight"] = l.lora_B.grad.clone()
    save_safetensors(dpo, os.path.join(out, "golden_dpo.safetensors"))
    print(preset, "loss", float(gold["loss"]), "lora loss", float(gl["loss"]), "dpo", float(loss), "full steps", fl.tolist())


def main():
    ap = argparse.ArgumentParser(); ap.add_argument("out"); ap.add_argument("--preset", nargs="*", default=list(PRESETS))
    a = ap.parse_args()
    for p in a.preset:
        write_fixture(os.path.join(a.out, p), p)


if __name__ == "__main__":
    main()
