"""LoRA training throughput of the families reference (families_ref.py) on one model shape, for
scripts/bench-vs-torch.sh: random weights (normal 0.02), LoRA r 8 / alpha 16 on every linear projection
(LLaMA-Factory's lora_target all), forward + backward + clip 1.0 + AdamW, as bench_train.py measures LLaMA.
usage: /usr/bin/python3 bench_families.py --config SHAPE.json [--bf16 --base-dtype bf16] [--seq 512] [--steps 5]
Prints one JSON line: tokens_per_s (batch 1 * seq / median step time), peak_rss_mb."""
import argparse, json, resource, statistics, time
import torch
from families_ref import CausalLM
from qwen35_ref import Qwen35CausalLM
from golden_families import LoRA, linear_modules


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True); ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--base-dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--seq", type=int, default=512); ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2); ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    cfg = json.load(open(a.config))
    # Qwen3.5: its Gated DeltaNet layers in the chunked form, as Hugging Face trains them without FLA kernels
    m = Qwen35CausalLM(cfg) if cfg["model_type"].startswith("qwen3_5") else CausalLM(cfg)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.02)
    if a.base_dtype == "bf16":
        m.to(torch.bfloat16)
    for p in m.parameters():
        p.requires_grad_(False)
    for _, parent, name in list(linear_modules(m)):
        base = getattr(parent, name)
        l = LoRA(base, 8, 16)
        with torch.no_grad():
            l.lora_A.normal_(0, 0.02)
        setattr(parent, name, l)
    trainable = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-5, weight_decay=0.0)
    ids = torch.randint(0, cfg["vocab_size"], (1, a.seq), generator=torch.Generator().manual_seed(1))
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=a.bf16):
            _, loss = m(ids, ids)
        loss.backward(); torch.nn.utils.clip_grad_norm_(trainable, 1.0); opt.step(); opt.zero_grad(set_to_none=True)
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"model": cfg["model_type"], "tokens_per_s": round(a.seq / statistics.median(times), 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main()
