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
#include "kernel_support.h"
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

// w [C, K] as [K, C]: each tap's weights lie contiguous over the channels, so the loops over a block of channels
// vectorise (read in place, the taps' stride of K made them gathers)
inline std::vector<float> tapsMajor(const float* w, int64_t C, int64_t K) {
  std::vector<float> wt(K * C);
  for (int64_t c = 0; c < C; c++)
    for (int64_t k = 0; k < K; k++) wt[k * C + c] = w[c * K + k];
  return wt;
}

// out = silu(sum_k w[c,k] x[t-K+1+k, c]) over channels c of x [B*T, C], w [C, K]. Inputs before the segment's
// start are zero, or (B = 1, no segments) the K-1 earlier inputs in `history` [(K-1), C], oldest first.
inline void causalConvSiluForward(const float* x, const float* w, float* out, int64_t B, int64_t T, int64_t C,
                                  int64_t K, const int32_t* seg, const float* history) {
  std::vector<int64_t> start = segmentStarts(seg, B, T);
  const std::vector<float> wt = tapsMajor(w, C, K);
  constexpr int64_t kBlock = 64;
#pragma omp parallel for schedule(static) collapse(2)
  for (int64_t b = 0; b < B; b++)
    for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
      FlushDenormals ftz;  // the vectorised SiLU multiplies by a denormal constant in every lane (see splitRange)
      const int64_t n = c0 + kBlock < C ? kBlock : C - c0;
      for (int64_t t = 0; t < T; t++) {
        float acc[kBlock] = {0};
        for (int64_t k = 0; k < K; k++) {
          const int64_t s = t - (K - 1) + k;
          const float* src;
          if (s >= start[b * T + t]) src = x + (b * T + s) * C + c0;
          else if (history && s < 0) src = history + (K - 1 + s) * C + c0;
          else continue;
          const float* wk = wt.data() + k * C + c0;
#pragma omp simd
          for (int64_t c = 0; c < n; c++) acc[c] += wk[c] * src[c];
        }
        float* o = out + (b * T + t) * C + c0;
#pragma omp simd
        for (int64_t c = 0; c < n; c++) o[c] = acc[c] / (1.0f + exp_approx(-acc[c]));
      }
    }
}

// dx (written) and dw (accumulated) of causalConvSiluForward without history. Each block of channels is one task:
// its share of dw is summed over the tokens in one order.
inline void causalConvSiluBackward(const float* x, const float* w, const float* dout, float* dx, float* dw, int64_t B,
                                   int64_t T, int64_t C, int64_t K, const int32_t* seg) {
  std::vector<int64_t> start = segmentStarts(seg, B, T);
  const std::vector<float> wt = tapsMajor(w, C, K);
  std::vector<float> dwt(K * C, 0.0f);
  constexpr int64_t kBlock = 64;
  std::memset(dx, 0, sizeof(float) * B * T * C);
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
    FlushDenormals ftz;
    const int64_t n = c0 + kBlock < C ? kBlock : C - c0;
    for (int64_t b = 0; b < B; b++)
      for (int64_t t = 0; t < T; t++) {
        float pre[kBlock] = {0}, dpre[kBlock];
        const int64_t first = start[b * T + t];
        for (int64_t k = 0; k < K; k++) {
          const int64_t s = t - (K - 1) + k;
          if (s < first) continue;
          const float *src = x + (b * T + s) * C + c0, *wk = wt.data() + k * C + c0;
#pragma omp simd
          for (int64_t c = 0; c < n; c++) pre[c] += wk[c] * src[c];
        }
        const float* d = dout + (b * T + t) * C + c0;
#pragma omp simd
        for (int64_t c = 0; c < n; c++) {
          const float z = pre[c], sg = 1.0f / (1.0f + exp_approx(-z));
          dpre[c] = d[c] * sg * (1.0f + z * (1.0f - sg));
        }
        for (int64_t k = 0; k < K; k++) {
          const int64_t s = t - (K - 1) + k;
          if (s < first) continue;
          const float *src = x + (b * T + s) * C + c0, *wk = wt.data() + k * C + c0;
          float *dsrc = dx + (b * T + s) * C + c0, *dwk = dwt.data() + k * C + c0;
#pragma omp simd
          for (int64_t c = 0; c < n; c++) {
            dsrc[c] += wk[c] * dpre[c];
            dwk[c] += src[c] * dpre[c];
          }
        }
      }
  }
  for (int64_t c = 0; c < C; c++)
    for (int64_t k = 0; k < K; k++) dw[c * K + k] += dwt[k * C + c];
}

}  // namespace lmf
