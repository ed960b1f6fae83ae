#!/usr/bin/env bash
# Data-parallel speed in one run, on the SmolLM2-135M shape at sequence 512 (lmf bench, median of the timed steps):
#   1. 1 process x 2 threads, then 2 ranks x 1 thread (lmf bench --nproc 2; Open MPI over shared memory):
#      the efficiency of data parallelism on this machine's two cores;
#   2. 1 process x 1 thread: one rank's compute alone; full fine-tuning alone and on 2 ranks over shared memory;
#   3. 2 ranks x 1 thread in two network namespaces joined by a 1 Gbit/s link with 1 ms one-way delay
#      (bench/delay-link.c: this kernel has no netem), Open MPI over TCP on that link only; the bytes it moved
#      per step are read from the link's counters;
# then bench/scaling-model.mjs turns those measurements into a modelled table for 8 and 32 machines at 10 and
# 25 Gbit/s. LoRA bf16, and full bf16 (whose gradients are 135M floats) for the network rows.
# usage: bash scripts/bench-distributed.sh [OUT.jsonl]   (root, for the namespaces; nothing else may run)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-bench-results/distributed.jsonl}
mkdir -p "$(dirname "$out")"
: > "$out"
work=$(mktemp -d)
nsA=lmf-dp-a
nsB=lmf-dp-b
cleanup() {
  [ -n "${link_pid:-}" ] && kill "$link_pid" 2>/dev/null || true
  ip netns del "$nsA" 2>/dev/null || true
  ip netns del "$nsB" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
common=(--model smollm2-135m --dtype bf16 --seq 512)
tag() { node -e 'const [t, l] = process.argv.slice(1); process.stdout.write(JSON.stringify({ run: t, ...JSON.parse(l) }) + "\n")' "$1" "$2"; }
bench() { # name, then lmf bench arguments
  local name=$1; shift
  tag "$name" "$(node bin/lmf.js bench "${common[@]}" "$@" | tail -1)" | tee -a "$out"
}

OMP_NUM_THREADS=2 bench "1x2 lora" --mode lora --steps 5 --warmup 2
bench "2x1 lora" --mode lora --steps 5 --warmup 2 --nproc 2
OMP_NUM_THREADS=1 bench "1x1 lora" --mode lora --steps 5 --warmup 2
OMP_NUM_THREADS=1 bench "1x1 full" --mode full --steps 3 --warmup 1
bench "2x1 full" --mode full --steps 3 --warmup 1 --nproc 2

if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/net/tun ]; then
  echo "bench-distributed: the network rows need root and /dev/net/tun; skipped" >&2
  exit 0
fi
gcc -O2 -o "$work/delay-link" bench/delay-link.c
ip netns add "$nsA"
ip netns add "$nsB"
ip -n "$nsA" link set lo up
ip -n "$nsB" link set lo up
"$work/delay-link" "$nsA" "$nsB" 1000 1000 > "$work/link.log" &
link_pid=$!
until grep -q ready "$work/link.log"; do sleep 0.1; done
ip -n "$nsA" addr add 10.77.0.1 peer 10.77.0.2 dev dl0
ip -n "$nsB" addr add 10.77.0.2 peer 10.77.0.1 dev dl0
ip -n "$nsA" link set dl0 mtu 9000 up
ip -n "$nsB" link set dl0 mtu 9000 up
# mpirun reaches the second "machine" as it would over ssh: its agent enters the namespace named by the host
cat > "$work/agent.sh" <<EOF
#!/bin/sh
host=\$1; shift
case "\$host" in 10.77.0.1) ns=$nsA;; 10.77.0.2) ns=$nsB;; *) exit 1;; esac
exec ip netns exec "\$ns" sh -c "\$*"
EOF
chmod +x "$work/agent.sh"
printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n' > "$work/hosts"
txBytes() { ip netns exec "$nsA" cat /sys/class/net/dl0/statistics/tx_bytes; }
overLink() { # name, steps, warmup, then lmf bench arguments
  local name=$1 steps=$2 warmup=$3; shift 3
  local before after line
  before=$(txBytes)
  line=$(ip netns exec "$nsA" mpirun --allow-run-as-root -np 2 --hostfile "$work/hosts" \
    --mca plm_rsh_agent "$work/agent.sh" --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 \
    --mca oob_tcp_if_include 10.77.0.0/24 --bind-to none -x OMP_NUM_THREADS=1 \
    "$(command -v node)" bin/lmf.js bench "${common[@]}" --steps "$steps" --warmup "$warmup" "$@" | tail -1)
  after=$(txBytes)
  tag "$name" "$(node -e 'const [l, b, n] = process.argv.slice(1); const r = JSON.parse(l); r.link_tx_mb_per_step = Math.round(Number(b) / Number(n) / 2 ** 20 * 1000) / 1000; r.link = "1 Gbit/s, 1 ms one-way"; console.log(JSON.stringify(r))' "$line" "$((after - before))" "$((steps + warmup))")" | tee -a "$out"
}
overLink "2x1 lora over 1 Gbit/s" 5 2 --mode lora
overLink "2x1 full over 1 Gbit/s" 3 1 --mode full
node bench/scaling-model.mjs "$out"
