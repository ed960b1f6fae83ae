#!/usr/bin/env bash
# The test suite: set-up (idempotent), type check, then every test file under node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.json --noEmit
# Node 20's runner finds no .ts files in a folder by itself: list them.
export LMF_CACHE="${LMF_CACHE:-$(mktemp -d)}"  # tests never touch the user cache
mapfile -t files < <(find test -name '*.test.ts' | sort)
node --import tsx --test --test-concurrency=1 "${files[@]}"
