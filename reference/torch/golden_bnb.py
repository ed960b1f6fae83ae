"""Writes test/fixtures/bnb/golden_bnb.safetensors: weights and what bnb_ref.py's quantizers make of them, for
LMFactory's quantizer to match code for code.
usage: /usr/bin/python3 golden_bnb.py OUT_FILE

Cases: <name>.w (F32 input) with, for nf4 and fp4, <name>.<type>.packed (U8), .absmax (F32), .dequant (F32);
double quantization of the nf4 absmax: <name>.nf4.nested_codes (U8), .nested_absmax (F32), .offset (F32 [1]),
.dq_dequant (F32, the weight through dequantised statistics); int8 rows: <name>.int8.codes (I8), .scb (F32),
.dequant (F32). Also dynamic_map (F32 [256]). Shapes: a projection-like [300, 70] (329 blocks, a partial last
block, two nested blocks, a first block of zeros, outliers), an odd count [7, 9], bf16-rounded values [64, 48]."""
import os, sys
import torch
from bnb_ref import (dequantize_4bit, dequantize_absmax, dequantize_int8_rows, dynamic_map, quantize_4bit,
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


if __name__ == "__main__":
    main(sys.argv[1])
