// Runtime instruction-set dispatch: CPUID (through GCC's __builtin_cpu_supports, which also checks that the
// operating system saves the AVX-512 registers) decides which compiled set of kernels runs.
#include <cstring>
#include "kernels.h"

namespace lmf {

namespace {
const KernelTable kTables[] = {
    {Isa::Avx2, "avx2", avx2::gemvF32, avx2::gemvBf16, avx2::attentionForward, avx2::attentionBackward},
    {Isa::Avx512, "avx512", avx512::gemvF32, avx512::gemvBf16, avx512::attentionForward, avx512::attentionBackward},
    {Isa::Avx512Bf16, "avx512bf16", avx512bf16::gemvF32, avx512bf16::gemvBf16, avx512bf16::attentionForward, avx512bf16::attentionBackward},
};
const KernelTable* active = nullptr;
}  // namespace

Isa detectIsa() {
  __builtin_cpu_init();
  bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (avx512 && __builtin_cpu_supports("avx512bf16")) return Isa::Avx512Bf16;
  return avx512 ? Isa::Avx512 : Isa::Avx2;
}

const char* isaName(Isa isa) { return kTables[static_cast<int>(isa)].name; }

std::string selectIsa(const char* requested) {
  Isa best = detectIsa();
  Isa chosen = best;
  if (requested && *requested) {
    int found = -1;
    for (const KernelTable& t : kTables)
      if (std::strcmp(t.name, requested) == 0) found = static_cast<int>(t.isa);
    if (found < 0) return std::string("LMF_ISA=") + requested + " is not a known path (avx2, avx512, avx512bf16)";
    if (found > static_cast<int>(best))
      return std::string("LMF_ISA=") + requested + " needs instructions this CPU lacks; its best path is " + isaName(best);
    chosen = static_cast<Isa>(found);
  }
  active = &kTables[static_cast<int>(chosen)];
  return "";
}

const KernelTable& kernels() {
  if (!active) selectIsa(nullptr);
  return *active;
}

}  // namespace lmf
