#!/usr/bin/env bash
# Quickstart: set-up, then check the engine against the PyTorch golden dumps shipped in ../shared/fixtures,
# then a short training-speed benchmark on the SmolLM2-135M shape.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
fx=${LMF_FIXTURES:-../shared/fixtures}/llama-tiny
echo "== lmf verify: llama-tiny (sharded folder) against PyTorch's logits, loss and gradients"
node bin/lmf.js verify --model "$fx/model-sharded" --golden "$fx/golden.safetensors" >/dev/null
echo "== lmf verify: llama-tiny + PEFT LoRA adapter"
node bin/lmf.js verify --model "$fx/model" --adapter "$fx/lora-adapter" --golden "$fx/golden_lora.safetensors" >/dev/null
echo "== lmf bench: LoRA (rank 8, all projections) training steps, SmolLM2-135M shape, sequence 512, bf16"
node bin/lmf.js bench --model smollm2-135m --mode lora --dtype bf16 --seq 512 --steps 3 --warmup 1
