#!/usr/bin/env bash
# Training throughput of LMFactory beside the PyTorch reference (../shared/reference/torch), in one run,
# on the SmolLM2-135M shape, sequence 512, batch 1; then LoRA bf16 on the Qwen3-0.6B and Gemma-3-270m shapes
# beside reference/torch/bench_families.py (set LMF_BENCH_FAMILIES=0 to skip those). PyTorch runs with OpenBLAS's OpenMP build (its best
# profile here; Debian's default threading makes its f32 2-3.8x slower). Needs Debian's python3-torch. The bf16 rows
# run where the CPU has bf16 dot products, else print a skipped line.
# usage: bash scripts/bench-vs-torch.sh [OUT.jsonl]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-bench-results/vs-torch.jsonl}
mkdir -p "$(dirname "$out")"
ref=${LMF_TORCH_REF:-../shared/reference/torch}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=scripts/torch-env.sh
. scripts/torch-env.sh
omp=$torch_blas
torch() {  # torch ARGS...
  LD_LIBRARY_PATH="$omp" PYTHONPATH="$ref:bench/torch" /usr/bin/python3 "$ref/bench_train.py" --steps 5 --warmup 2 "$@" --out "$work/t.jsonl" >/dev/null
  tail -n 1 "$work/t.jsonl"
}
ours() {  # ours ARGS...
  node bin/lmf.js bench --model smollm2-135m --seq 512 --batch 1 --steps 5 --warmup 2 "$@"
}
row() {  # row NAME TORCH_JSON OURS_JSON
  node -e '
    const [name, t, o] = process.argv.slice(1); const a = JSON.parse(t), b = JSON.parse(o);
    const line = { row: name, torch_tokens_per_s: a.tokens_per_s, ours_tokens_per_s: b.tokens_per_s,
      speedup: +(b.tokens_per_s / a.tokens_per_s).toFixed(2), torch_peak_rss_mb: a.peak_rss_mb, ours_peak_rss_mb: b.peak_rss_mb };
    console.log(JSON.stringify(line));' "$1" "$2" "$3" | tee -a "$out"
}
# bf16 rows where the CPU has bf16 dot products (or LMF_BENCH_BF16=1): without them PyTorch's bf16 steps run
# single-threaded emulation (its first LoRA bf16 step had not finished after 9 minutes on a Zen 3)
bf16=${LMF_BENCH_BF16:-$(node -e "import('./dist/native.js').then((m) => console.log(m.native.info().bf16Matmul === 'widened' ? 0 : 1))")}
skip() {  # skip NAME
  echo "{\"row\":\"$1\",\"skipped\":\"no bf16 dot products on this CPU (LMF_BENCH_BF16=1 runs it)\"}" | tee -a "$out"
}
bf16row() {  # bf16row NAME TORCH_ARGS OURS_ARGS
  # shellcheck disable=SC2086 # the arguments are words
  if [ "$bf16" = 1 ]; then row "$1" "$(torch $2)" "$(ours $3)"; else skip "$1"; fi
}
bf16row "lora bf16 (base in bf16)" "--mode lora --bf16 --base-dtype bf16" "--mode lora --dtype bf16"
row "lora f32" "$(torch --mode lora)" "$(ours --mode lora --dtype f32)"
row "full f32" "$(torch --mode full)" "$(ours --mode full --dtype f32)"
bf16row "full bf16" "--mode full --bf16" "--mode full --dtype bf16"
row "infer f32" "$(torch --mode infer)" "$(ours --mode infer --dtype f32)"

families() {  # families PRESET...: LoRA bf16 (base in bf16), sequence 512, the preset's shape in both engines
  for preset in "$@"; do
    if [ "$bf16" != 1 ]; then
      skip "$preset lora bf16 (base in bf16)"
      continue
    fi
    node --import tsx -e "import('./src/models/presets.ts').then((m) => console.log(JSON.stringify(m.presets['$preset'])))" >"$work/$preset.json"
    local t
    t=$(LD_LIBRARY_PATH="$omp" PYTHONPATH="reference/torch:$ref" /usr/bin/python3 reference/torch/bench_families.py \
      --config "$work/$preset.json" --bf16 --base-dtype bf16 --seq 512 --steps 3 --warmup 1)
    row "$preset lora bf16 (base in bf16)" "$t" "$(node bin/lmf.js bench --model "$preset" --mode lora --dtype bf16 --seq 512 --batch 1 --steps 3 --warmup 1)"
  done
}
[ "${LMF_BENCH_FAMILIES:-1}" = 0 ] || families qwen3-0.6b gemma3-270m
