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

# npm ci runs when the dependencies changed (it also builds the addon and compiles the TypeScript); otherwise
# only what is older than its sources is rebuilt.
stamp=node_modules/.lmf-setup-stamp
newer() { [ -n "$(find "$@" -newer "$stamp" -print -quit 2>/dev/null)" ]; }
if [ ! -f "$stamp" ] || newer package.json package-lock.json; then
  npm ci --no-audit --no-fund --loglevel=error
else
  if [ ! -f build/Release/lmf_native.node ] || newer binding.gyp native; then npm run install --silent >/dev/null 2>&1; fi
  if [ ! -d dist ] || newer src tsconfig.json; then npx --no-install tsc -p tsconfig.json; fi
  if [ ! -d web/dist ] || newer web/src web/index.html web/vite.config.ts; then npx --no-install vite build web --logLevel warn; fi
fi
touch "$stamp"
