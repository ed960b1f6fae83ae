"""Writes test/fixtures/bnb/golden_bnb.safetensors: weights and what bnb_ref.py's quantizers make of them, for
LMFactory's quantizer to match code for code.
usage: /usr/bin/python3 golden_bnb.py OUT_DIR   (writes OUT_DIR/golden_bnb.safetensors and OUT_DIR/<quant>-tiny/)

Cases: <name>.w (F32 input) with, for nf4 and fp4, <name>.<type>.packed (U8), .absmax (F32), .dequant (F32);
double quantization of the nf4 absmax: <name>.nf4.nested_codes (U8), .nested_absmax (F32), .offset (F32 [1]),
.dq_dequant (F32, the weight through dequantised statistics); int8 rows: <name>.int8.codes (I8), .scb (F32),
.dequant (F32). Also dynamic_map (F32 [256]). Shapes: a projection-like [300, 70] (329 blocks, a partial last
block, two nested blocks, a first block of zeros, outliers), an odd count [7, 9], bf16-rounded values [64, 48]."""
import os, sys
import torch
from bnb_ref import (FP4, NF4, dequantize_4bit, dequantize_absmax, dequantize_int8_rows, dynamic_map, quantize_4bit,
                     quantize_absmax, quantize_int8_rows)
from families_ref import save_safetensors


def cases():
    g = torch.Generator().manual_seed(7)
    big = torch.randn(300, 70, generator=g) * 0.02
    big.view(-1)[:64] = 0.0
    big[5, 3], big[200, 40] = 0.9, -1.3
    odd = torch.randn(7, 9, generator=g)
    bf16 = (torch.randn(64, 48, generator=g) * 0.05).bfloat16().float()
    return {"big": big, "odd": odd, "bf16": bf16}


def main(out):
    gold = {"dynamic_map": dynamic_map()}
    for name, w in cases().items():
        n = w.numel()
        gold[f"{name}.w"] = w
        for qt in ("nf4", "fp4"):
            packed, absmax = quantize_4bit(w, qt)
            gold[f"{name}.{qt}.packed"], gold[f"{name}.{qt}.absmax"] = packed, absmax
            gold[f"{name}.{qt}.dequant"] = dequantize_4bit(packed, absmax, qt, 64, n)
        packed, absmax = quantize_4bit(w, "nf4")
        codes, nested, offset, table = quantize_absmax(absmax)
        gold[f"{name}.nf4.nested_codes"], gold[f"{name}.nf4.nested_absmax"] = codes, nested
        gold[f"{name}.nf4.offset"] = offset.reshape(1)
        gold[f"{name}.nf4.dq_dequant"] = dequantize_4bit(packed, dequantize_absmax(codes, nested, offset, table), "nf4", 64, n)
        cb, scb = quantize_int8_rows(w)
        gold[f"{name}.int8.codes"], gold[f"{name}.int8.scb"] = cb, scb
        gold[f"{name}.int8.dequant"] = dequantize_int8_rows(cb, scb)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    save_safetensors(gold, out)
    print(out, len(gold), "tensors")




def write_bnb_folder(out, quant, double_quant=True):
    """A tiny LLaMA saved as transformers + bitsandbytes save it (quant: "nf4", "fp4" or "int8"): every projection
    quantized in bnb's layout, embeddings, norms and lm_head plain bf16; golden.safetensors holds input_ids and the
    logits of the reference model whose projections are the dequantised weights; lora-adapter/ and
    golden_lora.safetensors the QLoRA golden (write_qlora_golden)."""
    import json
    from families_ref import CausalLM, state_dict_for_save
    torch.manual_seed(3)
    cfg = dict(architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=128, hidden_size=64,
               intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
               max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
               hidden_act="silu", bos_token_id=1, eos_token_id=2, torch_dtype="bfloat16")
    m = CausalLM(cfg)
    with torch.no_grad():
        for n, p in m.named_parameters():
            p.copy_(torch.randn_like(p) * 0.05 + (1.0 if "norm" in n else 0.0))
    sd = {k: v.bfloat16() for k, v in state_dict_for_save(m).items()}
    proj = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    saved, dequantized = {}, {}
    for k, v in sd.items():
        if not (k.endswith(".weight") and k.split(".")[-2] in proj):
            saved[k] = v
            dequantized[k] = v.float()
            continue
        w = v.float()
        if quant == "int8":
            cb, scb = quantize_int8_rows(w)
            saved[k], saved[k[:-len("weight")] + "SCB"] = cb, scb
            saved[k[:-len("weight")] + "weight_format"] = torch.tensor(0, dtype=torch.uint8)
            dequantized[k] = dequantize_int8_rows(cb, scb)
            continue
        packed, absmax = quantize_4bit(w, quant)
        state = {"quant_type": quant, "blocksize": 64, "dtype": "bfloat16", "shape": list(w.shape)}
        saved[k] = packed.reshape(-1, 1)
        saved[k + ".quant_map"] = (NF4 if quant == "nf4" else FP4).clone()
        if double_quant:
            codes, nested, offset, table = quantize_absmax(absmax)
            saved[k + ".absmax"], saved[k + ".nested_absmax"], saved[k + ".nested_quant_map"] = codes, nested, table
            state.update(nested_blocksize=256, nested_dtype="float32", nested_offset=float(offset))
            absmax = dequantize_absmax(codes, nested, offset, table)
        else:
            saved[k + ".absmax"] = absmax
        saved[f"{k}.quant_state.bitsandbytes__{quant}"] = torch.tensor(list(json.dumps(state).encode()), dtype=torch.uint8)
        dequantized[k] = dequantize_4bit(packed, absmax, quant, 64, w.numel()).reshape(w.shape).bfloat16().float()
    mdir = os.path.join(out, "model")
    os.makedirs(mdir, exist_ok=True)
    qc = {"quant_method": "bitsandbytes", "load_in_4bit": quant != "int8", "load_in_8bit": quant == "int8",
          "bnb_4bit_quant_type": quant if quant != "int8" else "fp4", "bnb_4bit_use_double_quant": double_quant,
          "bnb_4bit_compute_dtype": "bfloat16", "bnb_4bit_quant_storage": "uint8", "llm_int8_threshold": 6.0,
          "llm_int8_skip_modules": None, "llm_int8_has_fp16_weight": False}
    json.dump(dict(cfg, quantization_config=qc), open(os.path.join(mdir, "config.json"), "w"), indent=2)
    save_safetensors(saved, os.path.join(mdir, "model.safetensors"), {"format": "pt"})
    ref = CausalLM(cfg)
    ref.load_state_dict({k: v for k, v in dequantized.items()}, strict=False)
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(3, 128, (1, 12), generator=g)
    with torch.no_grad():
        logits, _ = ref(ids)
    save_safetensors({"input_ids": ids.float(), "logits": logits}, os.path.join(out, "golden.safetensors"))
    write_qlora_golden(out, ref, ids, g)
    print(out, quant, "double" if double_quant else "")


def write_qlora_golden(out, ref, ids, g):
    """QLoRA's golden: a rank-4 adapter on every projection of the dequantised model, and its logits, loss and the
    gradients of every A and B (what training on the quantized base must reproduce)."""
    import json
    from golden_families import linear_modules, with_lora
    adapter = {}
    for pre, parent, name in linear_modules(ref):
        lin = getattr(parent, name)
        adapter[pre + ".lora_A.weight"] = torch.randn(4, lin.in_features, generator=g) * 0.1
        adapter[pre + ".lora_B.weight"] = torch.randn(lin.out_features, 4, generator=g) * 0.1
    ldir = os.path.join(out, "lora-adapter")
    os.makedirs(ldir, exist_ok=True)
    save_safetensors(adapter, os.path.join(ldir, "adapter_model.safetensors"), {"format": "pt"})
    targets = sorted({k.split(".")[-3] for k in adapter})
    json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
               "target_modules": targets, "bias": "none", "use_rslora": False, "use_dora": False,
               "fan_in_fan_out": False, "base_model_name_or_path": "../model"},
              open(os.path.join(ldir, "adapter_config.json"), "w"), indent=2)
    mods = with_lora(ref, adapter)
    labels = ids.clone(); labels[:, :3] = -100
    logits, loss = ref(ids, labels); loss.backward()
    gl = {"input_ids": ids.float(), "labels": labels.float(), "logits": logits.detach(), "loss": loss.detach().reshape(1)}
    for pre, l in mods:
        gl["grad." + pre + ".lora_A.weight"] = l.lora_A.grad.clone(); gl["grad." + pre + ".lora_B.weight"] = l.lora_B.grad.clone()
    save_safetensors(gl, os.path.join(out, "golden_lora.safetensors"))


if __name__ == "__main__":
    out_dir = sys.argv[1]
    main(os.path.join(out_dir, "golden_bnb.safetensors"))
    write_bnb_folder(os.path.join(out_dir, "nf4-tiny"), "nf4", True)
    write_bnb_folder(os.path.join(out_dir, "fp4-tiny"), "fp4", False)
    write_bnb_folder(os.path.join(out_dir, "int8-tiny"), "int8")
