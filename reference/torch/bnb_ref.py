"""bitsandbytes' weight quantizers in plain PyTorch, written from bnb's published algorithm (functional.py and the
CUDA kernels kQuantizeBlockwise / dQuantizeNF4 / dQuantizeFP4 / dQuantize<0>, and Int8Params): what its CUDA build
writes into "-bnb-4bit" and 8-bit checkpoints. Debian has no bitsandbytes, so this is the reference LMFactory's
quantizer (src/models/quant/bnb.ts) is checked against, code for code.

Conventions (as bnb's CUDA kernels): IEEE reciprocal of the block absmax, x = w * (1/absmax); an all-zero block
gives 0 * inf = NaN, which every tree sends to code 0; NF4 ties go to the lower code; FP4 uses bnb's own
thresholds; 8-bit dynamic codes break midpoint ties to the even index; the double-quantization offset is the
f64 mean of the absmax values rounded to f32."""
import math
import torch

NF4 = torch.tensor([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                    0.7229568362236023, 1.0], dtype=torch.float32)
FP4 = torch.tensor([0, .0625, 8, 12, 4, 6, 2, 3, 0, -.0625, -8, -12, -4, -6, -2, -3], dtype=torch.float32) / 12


def f32(v):
    return torch.tensor(v, dtype=torch.float32)


def nf4_codes(x):
    mids = (NF4[:-1] + NF4[1:]) / 2
    codes = (x.unsqueeze(-1) > mids).sum(-1)
    return torch.where(torch.isnan(x), torch.zeros_like(codes), codes)


def fp4_codes(x):
    a = x.abs()
    sign = (x < 0).long() * 8
    hi = torch.where(a > f32(0.583333), torch.where(a > f32(0.8333333), 3, 2), torch.where(a > f32(0.4166667), 5, 4))
    lo = torch.where(a > f32(0.0859375), torch.where(a > f32(0.20833333), 7, 6), torch.where(a > f32(0.00260417), 1, 0))
    codes = torch.where(a > f32(0.29166667), hi, lo) + sign
    return torch.where(torch.isnan(x), torch.zeros_like(codes), codes)


def normalized_blocks(values, blocksize):
    """Consecutive blocks of the flat f32 values (the last one partial): each block's absmax, and every value
    times the reciprocal of its block's absmax (an all-zero block: 0 * inf = NaN), flat [n]."""
    flat = values.detach().float().reshape(-1)
    n = flat.numel()
    nb = math.ceil(n / blocksize)
    padded = torch.zeros(nb * blocksize, dtype=torch.float32)
    padded[:n] = flat
    blocks = padded.view(nb, blocksize)
    absmax = blocks.abs().amax(1)
    return absmax, (blocks * (1.0 / absmax)[:, None]).reshape(-1)[:n]


def quantize_4bit(w, quant_type, blocksize=64):
    """-> packed uint8 [(n+1)//2], absmax f32 [ceil(n/blocksize)]"""
    absmax, x = normalized_blocks(w, blocksize)
    n = x.numel()
    codes = nf4_codes(x) if quant_type == "nf4" else fp4_codes(x)
    if n % 2:
        codes = torch.cat([codes, torch.tensor([7 if quant_type == "nf4" else 0])])
    packed = (codes[0::2] << 4) | codes[1::2]
    return packed.to(torch.uint8), absmax


def dequantize_4bit(packed, absmax, quant_type, blocksize, n):
    table = NF4 if quant_type == "nf4" else FP4
    codes = torch.stack([packed.long() >> 4, packed.long() & 15], 1).reshape(-1)[:n]
    return table[codes] * absmax.repeat_interleave(blocksize)[:n]


def linspace_f32(start, end, n):
    """torch >= 2's float32 linspace (what bnb runs on): step = (end - start) / (n - 1) in f32, then one fused
    multiply-add per point, from the start for the first half and from the end for the rest. (torch 1.13, on
    Debian, rounds some points differently; the products here are exact in f64, so only the FMA's one rounding
    is left, taken to f32.)"""
    start, end = float(f32(start)), float(f32(end))
    step = float(f32(float(f32(end - start)) / (n - 1)))
    pts = [start + step * k if k < n // 2 else end - step * (n - 1 - k) for k in range(n)]
    return torch.tensor(pts, dtype=torch.float64).float()


def dynamic_map():
    """create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) in f32."""
    data = []
    for i in range(7):
        b = linspace_f32(0.1, 1.0, 2 ** i + 1)
        means = (b[:-1] + b[1:]) / 2.0
        v = f32(10.0 ** (i - 6)) * means
        data += v.tolist() + (-v).tolist()
    data += [0.0, 1.0]
    return torch.tensor(data, dtype=torch.float32).sort().values


def dynamic_codes(x, table):
    mids = (table[:-1] + table[1:]) * f32(0.5)
    lo = torch.searchsorted(mids, x, right=False)  # first midpoint >= x
    tie = (lo < 255) & (x == mids[lo.clamp(max=254)]) & (lo % 2 == 1)
    codes = torch.where(tie, lo + 1, lo)
    return torch.where(torch.isnan(x), torch.zeros_like(codes), codes)


def quantize_absmax(absmax, nested_blocksize=256):
    """double quantization -> (codes uint8, nested_absmax f32, offset f32, dynamic map)"""
    offset = absmax.double().mean().float()
    nested, x = normalized_blocks(absmax - offset, nested_blocksize)
    table = dynamic_map()
    return dynamic_codes(x, table).to(torch.uint8), nested, offset, table


def dequantize_absmax(codes, nested, offset, table, nested_blocksize=256):
    return table[codes.long()] * nested.repeat_interleave(nested_blocksize)[: codes.numel()] + offset


def quantize_int8_rows(w):
    """LLM.int8 (Int8Params): the weight in fp16, row absmax SCB, round-half-even of w * (127 / SCB)."""
    b = w.detach().half().float()
    scb = b.abs().amax(1)
    cb = torch.round(b * (f32(127.0) / scb)[:, None])
    return torch.nan_to_num(cb).to(torch.int8), scb


def dequantize_int8_rows(cb, scb):
    return (cb.float() * scb[:, None]) * f32(1.0 / 127.0)
