// Cross-entropy fused with the output projection. Rows (tokens) that have a target are processed in
// chunks of `chunk` rows: logits for one chunk [chunk, V] exist at a time, never for the whole batch.
// With row weights given, the gradient of sum_r weight[r] * CE[r] is produced in the same pass:
// dX (rows without a target get zeros) and dW (accumulated). Without them only log-probabilities are made.
// With a softcap (Gemma 2's final_logit_softcapping) the logits are softcap * tanh(logit / softcap) and the
// gradient passes through the tanh's slope. Plain pointers and sizes (targets already checked against V);
// cross_entropy.cc binds it. Matmuls go through
// gemm (oneDNN), which throws dnnl::error.
#pragma once
#include <omp.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>
#include "elementwise_kernels.h"
#include "kernel_support.h"
#include "kernels.h"
#include "vecmath.h"

namespace lmf {
namespace {

// logp[r] = log softmax(x_r W^T)[target_r], 0 where target_r < 0; x [N, C], W [V, C] (f32 or bf16)
inline void lmHeadCrossEntropy(const float* x, const void* W, const int32_t* targets, const float* weights, float* logp,
                               float* dx, float* dW, int64_t N, int64_t C, int64_t V, DType dtype, int64_t chunk,
                               float softcap) {
  bool grad = weights != nullptr;

  std::vector<int64_t> rows;
  for (int64_t r = 0; r < N; r++) {
    logp[r] = 0.0f;
    if (targets[r] >= 0) rows.push_back(r);
  }
  if (dx) std::memset(dx, 0, static_cast<size_t>(N * C) * 4);
  const int64_t R = std::min<int64_t>(chunk, static_cast<int64_t>(rows.size()));
  if (R == 0) return;
  // A chunk's rows are padded with zero rows to the count gemm makes primitives for (their logits are zeros and
  // their gradient rows too, adding nothing to dW), so that no product copies them into a padded buffer.
  const auto padded = [](int64_t n) { return n <= kGemvMaxRows ? n : bucketRows(n); };
  const int64_t Rp = padded(R);
  // Scratch kept between calls (grow-only): fresh pages on every step would cost a page fault each.
  static std::vector<float> xc, logits, dxc, slope;
  static std::vector<uint16_t> xb, gb;
  auto grow = [](auto& v, size_t n) { if (v.size() < n) v.resize(n); };
  grow(xc, Rp * C);
  grow(logits, Rp * V);
  if (grad) grow(dxc, Rp * C);
  if (softcap > 0.0f) grow(slope, R * V);
  if (dtype == BF16) grow(xb, Rp * C);
  if (dtype == BF16 && grad) grow(gb, Rp * V);

  for (int64_t start = 0; start < static_cast<int64_t>(rows.size()); start += R) {
    const int64_t n = std::min<int64_t>(R, static_cast<int64_t>(rows.size()) - start), np = padded(n);
    for (int64_t i = 0; i < n; i++) std::memcpy(&xc[i * C], x + rows[start + i] * C, C * 4);
    std::memset(&xc[n * C], 0, static_cast<size_t>((np - n) * C) * 4);
    const void* xin = xc.data();
    if (dtype == BF16) {
      toBf16(xc.data(), xb.data(), np * C);
      xin = xb.data();
    }
    gemm(xin, W, logits.data(), np, V, C, false, true, false, nullptr, dtype);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
      FlushDenormals ftz;
      float* z = &logits[i * V];
      if (softcap > 0.0f) {
        float* sl = &slope[i * V];
        for (int64_t j = 0; j < V; j++) {
          float t = std::tanh(z[j] / softcap);
          z[j] = softcap * t;
          sl[j] = 1.0f - t * t;
        }
      }
      const float mx = maxOf(z, V);
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < V; j++) sum += exp_approx(z[j] - mx);
      float lse = mx + std::log(sum);
      int64_t r = rows[start + i];
      logp[r] = z[targets[r]] - lse;
      if (grad) {  // d(weight * CE)/dz = weight * (softmax - onehot), through the cap's slope when capped
        float wr = weights[r];
#pragma omp simd
        for (int64_t j = 0; j < V; j++) z[j] = wr * exp_approx(z[j] - lse);
        z[targets[r]] -= wr;
        if (softcap > 0.0f) {
          const float* sl = &slope[i * V];
#pragma omp simd
          for (int64_t j = 0; j < V; j++) z[j] *= sl[j];
        }
      }
    }
    if (!grad) continue;
    const void* g = logits.data();
    if (dtype == BF16) {
      toBf16(logits.data(), gb.data(), np * V);
      g = gb.data();
    }
    if (dx) {
      // dX = G W computed as (Wᵀ Gᵀ)ᵀ: on AVX2 (Zen 1) oneDNN contracted the vocabulary about twice as fast this
      // way round at 64 to 480 rows (the chunks of large vocabularies), on AVX-512 (Ice Lake) as fast; the
      // [C, rows] result is transposed into dX's rows
      gemm(W, g, dxc.data(), C, np, V, true, true, false, nullptr, dtype);
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; i++) {
        float* row = dx + rows[start + i] * C;
        for (int64_t c = 0; c < C; c++) row[c] = dxc[c * np + i];
      }
    }
    if (dW) gemm(g, xin, dW, V, C, np, true, false, true, nullptr, dtype);
  }
}

}  // namespace
}  // namespace lmf
