// The causal depthwise convolution with SiLU in front of Qwen3.5's Gated DeltaNet (the gated delta rule itself is
// delta_rule_kernels.h, compiled per instruction set).
//
// Layout: activations are rows of tokens, [B*T, features]. The convolution's channels are the fused q|k|v
// projection (2*Hk*dk + Hv*dv). A token's segment (packed sequences, or 0 for padding) bounds the window: a new
// segment sees no earlier token.
#pragma once
#include <omp.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#include "vecmath.h"

namespace lmf {

// Where each token's segment starts within its row (the token itself when segments are absent and t == 0).
inline std::vector<int64_t> segmentStarts(const int32_t* seg, int64_t B, int64_t T) {
  std::vector<int64_t> start(B * T);
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++) {
      int64_t i = b * T + t;
      start[i] = (t == 0 || (seg && seg[i] != seg[i - 1])) ? t : start[i - 1];
    }
  return start;
}

// out = silu(sum_k w[c,k] x[t-K+1+k, c]) over channels c of x [B*T, C], w [C, K]. Inputs before the segment's
// start are zero, or (B = 1, no segments) the K-1 earlier inputs in `history` [(K-1), C], oldest first.
inline void causalConvSiluForward(const float* x, const float* w, float* out, int64_t B, int64_t T, int64_t C,
                                  int64_t K, const int32_t* seg, const float* history) {
  std::vector<int64_t> start = segmentStarts(seg, B, T);
  constexpr int64_t kBlock = 64;
#pragma omp parallel for schedule(static) collapse(2)
  for (int64_t b = 0; b < B; b++)
    for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
      int64_t c1 = c0 + kBlock < C ? c0 + kBlock : C;
      for (int64_t t = 0; t < T; t++) {
        float acc[kBlock] = {0};
        for (int64_t k = 0; k < K; k++) {
          int64_t s = t - (K - 1) + k;
          const float* src;
          if (s >= start[b * T + t]) src = x + (b * T + s) * C;
          else if (history && s < 0) src = history + (K - 1 + s) * C;
          else continue;
          for (int64_t c = c0; c < c1; c++) acc[c - c0] += w[c * K + k] * src[c];
        }
        float* o = out + (b * T + t) * C;
#pragma omp simd
        for (int64_t c = c0; c < c1; c++) o[c] = acc[c - c0] / (1.0f + exp_approx(-acc[c - c0]));
      }
    }
}

// dx (written) and dw (accumulated) of causalConvSiluForward without history.
inline void causalConvSiluBackward(const float* x, const float* w, const float* dout, float* dx, float* dw, int64_t B,
                                   int64_t T, int64_t C, int64_t K, const int32_t* seg) {
  std::vector<int64_t> start = segmentStarts(seg, B, T);
  constexpr int64_t kBlock = 64;
  std::memset(dx, 0, sizeof(float) * B * T * C);
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
    int64_t c1 = c0 + kBlock < C ? c0 + kBlock : C;
    for (int64_t b = 0; b < B; b++)
      for (int64_t t = 0; t < T; t++) {
        float pre[kBlock] = {0}, dpre[kBlock];
        int64_t first = start[b * T + t];
        for (int64_t k = 0; k < K; k++) {
          int64_t s = t - (K - 1) + k;
          if (s < first) continue;
          const float* src = x + (b * T + s) * C;
          for (int64_t c = c0; c < c1; c++) pre[c - c0] += w[c * K + k] * src[c];
        }
        const float* d = dout + (b * T + t) * C;
        for (int64_t c = c0; c < c1; c++) {
          float z = pre[c - c0], sg = 1.0f / (1.0f + exp_approx(-z));
          dpre[c - c0] = d[c] * sg * (1.0f + z * (1.0f - sg));
        }
        for (int64_t k = 0; k < K; k++) {
          int64_t s = t - (K - 1) + k;
          if (s < first) continue;
          const float* src = x + (b * T + s) * C;
          float* dsrc = dx + (b * T + s) * C;
          for (int64_t c = c0; c < c1; c++) {
            dsrc[c] += w[c * K + k] * dpre[c - c0];
            dw[c * K + k] += src[c] * dpre[c - c0];
          }
        }
      }
  }
}

}  // namespace lmf
