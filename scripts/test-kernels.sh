#!/usr/bin/env bash
# Builds native/test/kernels_test.cc with every instruction-set path of the kernels, at the addon's -O3 (code
# generation differs from -O2 in the last bit, and bit-exact tests must see what ships), and runs it: for this
# machine (x86-64: avx2, avx512, avx512bf16: the addon's own objects for the paths this CPU has, SIMDe's
# emulation of their instructions for the paths it lacks, native/test/simde_avx512.h) and, cross-compiled with
# Debian's aarch64 compiler, under qemu-user as arm64 (neon and neonbf16 on `-cpu max`, neon alone on a
# Cortex-A72, which has no bf16). `bash scripts/test-kernels.sh [x86|arm64]`; installs the cross tools when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common=(-std=c++17 -O3 -fopenmp -ffp-contract=fast -fno-trapping-math -fno-math-errno -Wno-psabi)
targets=${1:-x86 arm64}

build() {  # build CXX OUT BASE_FLAGS PATH:FLAGS... (PATH:@OBJECT links an object the addon's build made)
  local cxx=$1 bin=$2 base=$3
  shift 3
  # every translation unit at once (the instruction-set files take most of the time), then the link
  local objs=() pids=()
  for spec in "$@" kernels_test:"$base" cpu:"$base" scratch:"$base"; do
    local name=${spec%%:*} flags=${spec#*:} src
    if [[ $flags == @* ]]; then
      objs+=("${flags#@}")
      continue
    fi
    case $name in
      kernels_test) src=native/test/kernels_test.cc ;;
      cpu | scratch) src=native/src/$name.cc ;;
      *) src=native/src/isa/$name.cc ;;
    esac
    # shellcheck disable=SC2086
    "$cxx" "${common[@]}" $flags -c "$src" -o "$out/$name.o" &
    pids+=($!)
    objs+=("$out/$name.o")
  done
  # every compile finishes (none left writing into $out as the trap removes it) before a failure stops the script
  local failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ "$failed" -eq 0 ]
  "$cxx" "${common[@]}" "${objs[@]}" -o "$bin"
}

for target in $targets; do
  case "$target" in
    x86)
      # a path this CPU lacks is compiled on SIMDe's portable emulation of its instructions and runs all the same
      cpu=" $(grep -m1 '^flags' /proc/cpuinfo || true) "
      has() { for f in "$@"; do [[ $cpu == *" $f "* ]] || return 1; done; }
      base=-march=x86-64-v3 avx512=-march=x86-64-v4 bf16="-march=x86-64-v4 -mavx512bf16"
      # (at -O1: SIMDe's headers take 24 s to compile at -O3, 6 s at -O1; emulation does not reproduce the
      # native code generation anyway)
      emulate="-march=x86-64-v3 -O1 -include native/test/simde_avx512.h"
      has avx512f avx512bw avx512vl avx512dq || avx512=$emulate
      has avx512f avx512bw avx512vl avx512dq avx512_bf16 || bf16="$emulate -DLMF_EMULATE_AVX512BF16"
      if [[ "$avx512 $bf16" == *simde* ]]; then
        base="$base -DLMF_EMULATED_AVX512"
        if [ ! -f /usr/include/simde/x86/avx512.h ]; then
          SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
          $SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q libsimde-dev >/dev/null
        fi
      fi
      emulated=$([[ $avx512 == *simde* ]] && echo "avx512 ")$([[ $bf16 == *simde* ]] && echo avx512bf16)
      # a path this CPU runs natively is the addon's own object (build.mjs brings it up to date first): the test
      # checks the code that ships, and does not compile it a second time
      node scripts/build.mjs native
      native() { echo "@build/Release/obj.target/lmf_kernels_$1/native/src/isa/$1.o"; }
      avx2=$(native avx2)
      [[ $avx512 == *simde* ]] || avx512=$(native avx512)
      [[ $bf16 == *simde* ]] || bf16=$(native avx512bf16)
      echo "== x86-64 (this CPU; emulated: ${emulated:-none})"
      build g++ "$out/kernels-x86" "$base" "avx2:$avx2" "avx512:$avx512" "avx512bf16:$bf16"
      "$out/kernels-x86"
      ;;
    arm64)
      if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        $SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q g++-aarch64-linux-gnu qemu-user >/dev/null
      fi
      echo "== arm64 under qemu-user"
      build aarch64-linux-gnu-g++ "$out/kernels-arm64" -march=armv8-a neon:-march=armv8-a "neonbf16:-march=armv8.6-a+bf16"
      echo "-- -cpu max (NEON + BF16)"
      OMP_NUM_THREADS=2 qemu-aarch64 -cpu max -L /usr/aarch64-linux-gnu "$out/kernels-arm64"
      echo "-- -cpu cortex-a72 (NEON only)"
      OMP_NUM_THREADS=2 qemu-aarch64 -cpu cortex-a72 -L /usr/aarch64-linux-gnu "$out/kernels-arm64"
      ;;
    *) echo "unknown target $target (x86, arm64)" >&2; exit 2 ;;
  esac
done
