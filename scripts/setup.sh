#!/usr/bin/env bash
# Prepares a fresh machine (Debian 12, Node 20) to build and run LMFactory; safe to rerun.
# Installs the system packages the native addon needs when they are missing, then `npm ci`, which
# builds the addon (node-gyp) and compiles the TypeScript (prepare).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pkg in libdnnl-dev g++ make python3 fonts-dejavu-core libopenmpi-dev openmpi-bin; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
fi

# npm ci when the dependencies changed (its install and prepare scripts build through scripts/build.mjs); then
# whatever else is out of date is rebuilt (each step does nothing when its output is current).
stamp=node_modules/.lmf-setup-stamp
if [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi
node scripts/build.mjs

# `lmf` on PATH, as a global npm install would put it: a link to this working tree (no scripts run, nothing rebuilt)
if [ "$(readlink -f "$(command -v lmf 2>/dev/null)" 2>/dev/null)" != "$(readlink -f bin/lmf.js)" ]; then
  npm link --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null 2>&1 || echo "setup: could not put lmf on PATH (npm link); use node bin/lmf.js" >&2
fi
