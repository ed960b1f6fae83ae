// C[M, N] (+)= A[M, K] · B[K, N], all f32, row-major and contiguous: the product that gives a linear layer's input
// gradient (dX = dY · W with W [out, in] as stored), on the register tiles of tile_gemm.h. oneDNN reached only
// about half of the f32 peak on this form at our shapes (AVX-512, Ice Lake: `lmf bench matmuls`' input_grad rows),
// against 0.6-0.75 for the forward's form. B is copied a panel at a time ([kPanelK, 64] contiguous, BLIS-style), so
// that the tile's four vector loads per step come from one compact block that stays in cache instead of four rows
// N floats apart; without the copy the tiles ran slower than oneDNN. Each thread takes whole groups of 6 rows and
// packs the panels it reads itself (no barrier between threads). An element's sum runs over K in one order (panel
// by panel, step by step) whichever thread computes it, so any thread count gives the same bits. Compiled once per
// instruction set inside LMF_ISA_NS (native/src/isa/*.cc); cpu.cc's table offers it where it beat oneDNN.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include "kernel_support.h"
#include "tile_gemm.h"

#ifndef LMF_ISA_NS
#error "define LMF_ISA_NS before including packed_gemm_kernels.h"
#endif

namespace lmf {
namespace LMF_ISA_NS {

void packedGemmF32(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, bool accumulate) {
  // a panel of 384 rows of 64 floats is 96 KiB: it stays in L2 while every row group of the thread passes over it.
  // It lives on the thread's stack: a heap block of that size per call cost page faults every time (glibc hands the
  // top of its heap back on free), which had made the whole product no faster than oneDNN's
  constexpr int64_t kPanelK = 384, kPanelN = kNV * kLanes;
  // whole groups of 6 rows a thread (splitRange also flushes denormals there)
  splitRange((M + 5) / 6, 0, [=](int64_t g0, int64_t g1) {
    const int64_t m0 = g0 * 6, m1 = std::min(M, g1 * 6);
    alignas(64) float panel[kPanelK * kPanelN];
    for (int64_t k0 = 0; k0 < K && m1 > m0; k0 += kPanelK) {
      const int64_t kk = std::min(kPanelK, K - k0);
      const bool add = accumulate || k0 > 0;
      const float* a = A + m0 * K + k0;
      float* c = C + m0 * N;
      int64_t n0 = 0;
      for (; n0 + kPanelN <= N; n0 += kPanelN) {
        for (int64_t k = 0; k < kk; k++) std::memcpy(panel + k * kPanelN, B + (k0 + k) * N + n0, kPanelN * 4);
        tileGemm(a, K, panel, kPanelN, c + n0, N, m1 - m0, kPanelN, kk, add);
      }
      if (n0 < N) tileGemm(a, K, B + k0 * N + n0, N, c + n0, N, m1 - m0, N - n0, kk, add);
    }
  });
}

}  // namespace LMF_ISA_NS
}  // namespace lmf
