// Runtime instruction-set dispatch: the CPU's features decide which compiled set of kernels runs. On x86-64,
// GCC's __builtin_cpu_supports (which also checks that the operating system saves the AVX-512 registers); on
// arm64, the kernel's hardware capabilities (getauxval).
#include <cstring>
#include "kernels.h"
#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace lmf {

namespace {
#if defined(__x86_64__)
const KernelTable kTables[] = {
    {0, "avx2", avx2::gemvF32, avx2::gemvBf16, avx2::gemvF32Bf16, avx2::gemv4bit, avx2::gemvInt8, avx2::attentionForward, avx2::attentionBackward, avx2::deltaRecurrentForward, avx2::deltaChunkedForward, avx2::deltaChunkedBackward, avx2::peakGflops, nullptr},
    {1, "avx512", avx512::gemvF32, avx512::gemvBf16, avx512::gemvF32Bf16, avx512::gemv4bit, avx512::gemvInt8, avx512::attentionForward, avx512::attentionBackward, avx512::deltaRecurrentForward, avx512::deltaChunkedForward, avx512::deltaChunkedBackward, avx512::peakGflops, avx512::packedGemmF32},
    {2, "avx512bf16", avx512bf16::gemvF32, avx512bf16::gemvBf16, avx512bf16::gemvF32Bf16, avx512bf16::gemv4bit, avx512bf16::gemvInt8, avx512bf16::attentionForward, avx512bf16::attentionBackward, avx512bf16::deltaRecurrentForward, avx512bf16::deltaChunkedForward, avx512bf16::deltaChunkedBackward, avx512bf16::peakGflops, avx512bf16::packedGemmF32},
};
#elif defined(__aarch64__)
const KernelTable kTables[] = {
    {0, "neon", neon::gemvF32, neon::gemvBf16, neon::gemvF32Bf16, neon::gemv4bit, neon::gemvInt8, neon::attentionForward, neon::attentionBackward, neon::deltaRecurrentForward, neon::deltaChunkedForward, neon::deltaChunkedBackward, neon::peakGflops, nullptr},
    {1, "neonbf16", neonbf16::gemvF32, neonbf16::gemvBf16, neonbf16::gemvF32Bf16, neonbf16::gemv4bit, neonbf16::gemvInt8, neonbf16::attentionForward, neonbf16::attentionBackward, neonbf16::deltaRecurrentForward, neonbf16::deltaChunkedForward, neonbf16::deltaChunkedBackward, neonbf16::peakGflops, nullptr},
};
#endif
constexpr int kPaths = sizeof(kTables) / sizeof(kTables[0]);
const KernelTable* active = nullptr;
}  // namespace

const KernelTable* kernelPaths(int* count) {
  *count = kPaths;
  return kTables;
}

int supportedLevels() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (avx512 && __builtin_cpu_supports("avx512bf16")) return 3;
  return avx512 ? 2 : 1;
#elif defined(__aarch64__)
  return (getauxval(AT_HWCAP2) & HWCAP2_BF16) ? 2 : 1;
#endif
}

std::string selectIsa(const char* requested) {
  int best = supportedLevels() - 1;
  int chosen = best;
  if (requested && *requested) {
    int found = -1;
    std::string names;
    for (const KernelTable& t : kTables) {
      if (std::strcmp(t.name, requested) == 0) found = t.level;
      names += names.empty() ? t.name : std::string(", ") + t.name;
    }
    if (found < 0) return std::string("LMF_ISA=") + requested + " is not a known path (" + names + ")";
    if (found > best)
      return std::string("LMF_ISA=") + requested + " needs instructions this CPU lacks; its best path is " + kTables[best].name;
    chosen = found;
  }
  active = &kTables[chosen];
  return "";
}

const KernelTable& kernels() {
  if (!active) selectIsa(nullptr);
  return *active;
}

}  // namespace lmf
