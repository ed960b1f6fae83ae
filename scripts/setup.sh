#!/usr/bin/env bash
# Prepares a fresh machine (Debian 12, Node 20) to build and run LMFactory; safe to rerun.
# Installs the system packages the native addon needs when they are missing, then `npm ci`, which
# builds the addon (node-gyp) and compiles the TypeScript (prepare).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pkg in libdnnl-dev g++ make python3 fonts-dejavu-core; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
fi

# npm ci is skipped when node_modules, the addon and dist/ are newer than everything they come from.
stamp=node_modules/.lmf-setup-stamp
if [ -f "$stamp" ] && [ -f build/Release/lmf_native.node ] && [ -d dist ] \
  && [ -z "$(find package.json package-lock.json binding.gyp native src tsconfig.json -newer "$stamp" -print -quit)" ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
touch "$stamp"
