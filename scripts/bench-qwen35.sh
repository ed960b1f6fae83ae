#!/usr/bin/env bash
# Qwen3.5-0.8B's shape (18 Gated DeltaNet and 6 gated attention layers, a 248k vocabulary tied to the embeddings),
# in one run: LoRA training (r 8 on every projection) at sequence 512 and 2048 beside the PyTorch reference
# (reference/torch/bench_families.py: Hugging Face's layers, the delta rule in its chunked torch form), in bf16 (the
# base in bf16, autocast) and in f32 (PyTorch's best profile on CPUs without bf16 dot products); then LMFactory's
# decode speed and its step profile (what the Gated DeltaNet kernels take of a step).
# usage: bash scripts/bench-qwen35.sh [OUT.jsonl]
#   LMF_TORCH_TIMEOUT: seconds a reference run may take (default 3600; a run past it, or killed, is reported so)
#   LMF_QWEN35_ROWS: the rows to run, "dtype:seq" (default "bf16:512 bf16:2048 f32:512 f32:2048")
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-bench-results/qwen35.jsonl}
mkdir -p "$(dirname "$out")"
ref=${LMF_TORCH_REF:-../shared/reference/torch}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=scripts/torch-env.sh
. scripts/torch-env.sh
node --import tsx -e "import('./src/models/presets.ts').then((m) => console.log(JSON.stringify(m.presets['qwen3.5-0.8b'])))" >"$work/shape.json"
for row in ${LMF_QWEN35_ROWS:-bf16:512 bf16:2048 f32:512 f32:2048}; do
  dtype=${row%%:*} seq=${row##*:}
  flags=(); [ "$dtype" = bf16 ] && flags=(--bf16 --base-dtype bf16)
  rc=0
  t=$(LD_LIBRARY_PATH="$torch_blas" PYTHONPATH="reference/torch:$ref" timeout "${LMF_TORCH_TIMEOUT:-3600}" /usr/bin/python3 \
    reference/torch/bench_families.py --config "$work/shape.json" "${flags[@]}" --seq "$seq" --steps 1 --warmup 1) || rc=$?
  # 124: past the timeout; 137: killed (on this 24 GB machine, the kernel's out-of-memory killer)
  [ "$rc" = 0 ] || t="{\"tokens_per_s\": null, \"error\": \"$([ "$rc" = 124 ] && echo timed out || echo "exit $rc")\"}"
  o=$(node bin/lmf.js bench --model qwen3.5-0.8b --mode lora --dtype "$dtype" --seq "$seq" --steps 3 --warmup 1)
  node -e '
    const [seq, dtype, t, o] = process.argv.slice(1); const a = JSON.parse(t), b = JSON.parse(o);
    console.log(JSON.stringify({ row: `qwen3.5-0.8b lora ${dtype} seq ${seq}`, torch_tokens_per_s: a.tokens_per_s,
      torch_error: a.error ?? null, ours_tokens_per_s: b.tokens_per_s, ours_step_s: b.step_s,
      speedup: a.tokens_per_s ? +(b.tokens_per_s / a.tokens_per_s).toFixed(2) : null, ours_gflops: b.gflops,
      peak_fraction: b.peak_fraction, torch_peak_rss_mb: a.peak_rss_mb ?? null, ours_peak_rss_mb: b.peak_rss_mb }));' \
    "$seq" "$dtype" "$t" "$o" | tee -a "$out"
done
node bin/lmf.js bench --model qwen3.5-0.8b --mode generate --dtype bf16 --seq 128 --new-tokens 32 | tee -a "$out"
# the kernels' share of one step at sequence 512 (LMF_PROFILE times every native call; it prints at exit)
LMF_PROFILE=1 node bin/lmf.js bench --model qwen3.5-0.8b --mode lora --dtype bf16 --seq 512 --steps 1 --warmup 1 \
  2>"$work/profile.txt" >/dev/null
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n");
  const ms = Object.fromEntries(lines.map((l) => l.match(/^(\w+)\s+([\d.]+) ms\s+(\d+) calls/)).filter(Boolean)
    .map((m) => [m[1], +m[2] / 2]));  // two steps ran: the warm-up and the timed one
  const total = Object.entries(ms).filter(([k]) => !["peakGflops", "fillNormal"].includes(k)).reduce((a, [, v]) => a + v, 0);
  const delta = ["gatedDeltaForward", "gatedDeltaBackward", "causalConvSiluForward", "causalConvSiluBackward"];
  const share = Object.fromEntries(delta.map((k) => [k, +((ms[k] ?? 0) / total).toFixed(3)]));
  console.log(JSON.stringify({ row: "qwen3.5-0.8b lora bf16 seq 512 profile", native_ms_per_step: Math.round(total),
    ms_per_step: Object.fromEntries(Object.entries(ms).sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, v]) => [k, Math.round(v)])),
    deltanet_share: share }));' "$work/profile.txt" | tee -a "$out"
