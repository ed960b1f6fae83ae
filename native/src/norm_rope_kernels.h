// RMSNorm (forward and backward) and rotary position embeddings (rotate-half convention, as Hugging Face):
// plain pointers and sizes; norm_rope.cc binds them.
#pragma once
#include <omp.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>
#include "kernel_support.h"

namespace lmf {
namespace {

// out = w * x * rstd, rstd = 1/sqrt(mean(x^2) + eps) per row of C; rstd may be null
inline void rmsnormForward(const float* x, const float* w, float* out, float* rstd, int64_t rows, int64_t C, float eps) {
  splitRange(rows, 16384 / C, [=](int64_t from, int64_t to) {
    for (int64_t r = from; r < to; r++) {
      const float* xr = x + r * C;
      float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
      for (int64_t c = 0; c < C; c++) ss += xr[c] * xr[c];
      float s = 1.0f / std::sqrt(ss / static_cast<float>(C) + eps);
      if (rstd) rstd[r] = s;
      float* o = out + r * C;
#pragma omp simd
      for (int64_t c = 0; c < C; c++) o[c] = w[c] * (xr[c] * s);
    }
  });
}

// dx = rstd*(w*dout - xhat*mean(w*dout*xhat)); dw (or null) += sum over rows of dout*xhat (each thread sums its
// rows, then the partial sums are added in order: deterministic).
inline void rmsnormBackward(const float* dout, const float* x, const float* w, const float* rstd, float* dx, float* dw,
                            int64_t rows, int64_t C) {
  int nt = rows * C > 16384 ? omp_get_max_threads() : 1;
  std::vector<float> partial(dw ? static_cast<size_t>(nt * C) : 0, 0.0f);
#pragma omp parallel num_threads(nt)
  {
    int me = omp_get_thread_num(), n = omp_get_num_threads();
    float* pw = dw ? partial.data() + me * C : nullptr;
    for (int64_t r = rows * me / n; r < rows * (me + 1) / n; r++) {
      const float* xr = x + r * C;
      const float* g = dout + r * C;
      float s = rstd[r];
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t c = 0; c < C; c++) dot += w[c] * g[c] * xr[c] * s;
      float mean = dot / static_cast<float>(C);
      float* d = dx + r * C;
#pragma omp simd
      for (int64_t c = 0; c < C; c++) d[c] = s * (w[c] * g[c] - xr[c] * s * mean);
      if (pw) {
#pragma omp simd
        for (int64_t c = 0; c < C; c++) pw[c] += g[c] * xr[c] * s;
      }
    }
  }
  if (dw)
    for (int t = 0; t < nt; t++)
      for (int64_t c = 0; c < C; c++) dw[c] += partial[t * C + c];
}

// cos/sin [tokens, half] of position * inv_freq: the angle in f32 (as Hugging Face), its cosine and sine rounded
// from double precision. Made once per batch and shared by every layer.
inline void ropeTable(const int32_t* pos, const float* invFreq, float* cs, float* sn, int64_t N, int64_t half) {
  splitRange(N, 16384 / std::max<int64_t>(half, 1), [=](int64_t from, int64_t to) {
    for (int64_t t = from; t < to; t++)
      for (int64_t j = 0; j < half; j++) {
        double angle = static_cast<double>(static_cast<float>(pos[t]) * invFreq[j]);
        cs[t * half + j] = static_cast<float>(std::cos(angle));
        sn[t * half + j] = static_cast<float>(std::sin(angle));
      }
  });
}

// Rotates the first R values of each head of x [tokens, heads, headDim D] in place (rotate-half over R; R < D
// is partial rotary, the rest of the head passes through); inverse rotates by -angle: the backward pass.
inline void rope(float* x, const float* cs, const float* sn, int64_t N, int64_t H, int64_t D, int64_t R, bool inverse) {
  const float sign = inverse ? -1.0f : 1.0f;
  int64_t half = R / 2;
  splitRange(N, 16384 / (H * D), [=](int64_t from, int64_t to) {
    for (int64_t t = from; t < to; t++) {
      const float* c = cs + t * half;
      const float* s = sn + t * half;
      for (int64_t h = 0; h < H; h++) {
        float* v = x + (t * H + h) * D;
#pragma omp simd
        for (int64_t j = 0; j < half; j++) {
          float a = v[j], b = v[j + half], sj = sign * s[j];
          v[j] = a * c[j] - b * sj;
          v[j + half] = b * c[j] + a * sj;
        }
      }
    }
  });
}

}  // namespace
}  // namespace lmf
