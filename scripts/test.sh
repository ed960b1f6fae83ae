#!/usr/bin/env bash
# The test suite: set-up (idempotent), type check, then every test file under node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.json --noEmit
npx tsc -p web/tsconfig.json
npx eslint .
npx prettier --check --log-level warn src test web/src scripts bench eslint.config.js
# the web UI's end-to-end test drives Debian's Chromium (and screenshots the Chinese page: a CJK font)
if ! dpkg -s chromium >/dev/null 2>&1 || ! dpkg -s fonts-wqy-microhei >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium fonts-wqy-microhei >/dev/null
fi
# Node 20's runner finds no .ts files in a folder by itself: list them.
export LMF_CACHE="${LMF_CACHE:-$(mktemp -d)}"  # tests never touch the user cache
mapfile -t files < <(find test -name '*.test.ts' | sort)
node --import tsx --test --test-concurrency=1 "${files[@]}"
