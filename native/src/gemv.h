// Few-row products against a weight in Hugging Face's layout, C[m, n] (+)= A[m, :] · W[n, :] (+ bias[n]),
// for decoding: with one to four rows of activations the work is reading W once, so the kernel streams W's
// rows across the threads and keeps each row's dot products in registers (AVX-512 FMA for f32,
// AVX512-BF16 dot products for bf16, f32 accumulation either way).
#pragma once
#include <immintrin.h>
#include <omp.h>
#include <cstdint>
#include "common.h"

namespace lmf {

constexpr int64_t kGemvMaxRows = 4;

namespace gemv_detail {

inline float reduce(__m512 v) { return _mm512_reduce_add_ps(v); }


// dot products of rows a[0..M) with 4 consecutive weight rows w0..w3, each K long
template <typename T>
inline void dots4(const T* a, int64_t M, int64_t K, const T* w, float out[kGemvMaxRows][4]);

template <>
inline void dots4<float>(const float* a, int64_t M, int64_t K, const float* w, float out[kGemvMaxRows][4]) {
  for (int64_t m = 0; m < M; m++) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const float* x = a + m * K;
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
      __m512 xv = _mm512_loadu_ps(x + k);
      s0 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w + k), s0);
      s1 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w + K + k), s1);
      s2 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w + 2 * K + k), s2);
      s3 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w + 3 * K + k), s3);
    }
    float r[4] = {reduce(s0), reduce(s1), reduce(s2), reduce(s3)};
    for (; k < K; k++)
      for (int j = 0; j < 4; j++) r[j] += x[k] * w[j * K + k];
    for (int j = 0; j < 4; j++) out[m][j] = r[j];
  }
}

#if defined(__AVX512BF16__)
template <>
inline void dots4<uint16_t>(const uint16_t* a, int64_t M, int64_t K, const uint16_t* w, float out[kGemvMaxRows][4]) {
  for (int64_t m = 0; m < M; m++) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const uint16_t* x = a + m * K;
    int64_t k = 0;
    auto load = [](const uint16_t* p) { return (__m512bh)_mm512_loadu_si512(p); };
    for (; k + 32 <= K; k += 32) {
      __m512bh xv = load(x + k);
      s0 = _mm512_dpbf16_ps(s0, xv, load(w + k));
      s1 = _mm512_dpbf16_ps(s1, xv, load(w + K + k));
      s2 = _mm512_dpbf16_ps(s2, xv, load(w + 2 * K + k));
      s3 = _mm512_dpbf16_ps(s3, xv, load(w + 3 * K + k));
    }
    float r[4] = {reduce(s0), reduce(s1), reduce(s2), reduce(s3)};
    for (; k < K; k++)
      for (int j = 0; j < 4; j++) r[j] += bf16_to_f32(x[k]) * bf16_to_f32(w[j * K + k]);
    for (int j = 0; j < 4; j++) out[m][j] = r[j];
  }
}
#else
template <>
inline void dots4<uint16_t>(const uint16_t* a, int64_t M, int64_t K, const uint16_t* w, float out[kGemvMaxRows][4]) {
  for (int64_t m = 0; m < M; m++)
    for (int j = 0; j < 4; j++) {
      float s = 0;
      for (int64_t k = 0; k < K; k++) s += bf16_to_f32(a[m * K + k]) * bf16_to_f32(w[j * K + k]);
      out[m][j] = s;
    }
}
#endif

}  // namespace gemv_detail

inline float toF32(float v) { return v; }
inline float toF32(uint16_t v) { return bf16_to_f32(v); }

// C[m, n] (+)= A[m, :] · W[n, :] (+ bias[n]) for M <= kGemvMaxRows; weight rows in blocks of four, the last
// N % 4 rows one at a time.
template <typename T>
void gemvNT(const T* A, const T* W, float* C, int64_t M, int64_t N, int64_t K, bool accumulate, const float* bias) {
  int64_t blocks = N / 4;
  auto store = [&](int64_t m, int64_t n, float v) {
    v += bias ? bias[n] : 0.0f;
    C[m * N + n] = accumulate ? C[m * N + n] + v : v;
  };
#pragma omp parallel for schedule(static) if (N * K > (1 << 16))
  for (int64_t b = 0; b < blocks; b++) {
    float out[kGemvMaxRows][4];
    gemv_detail::dots4<T>(A, M, K, W + b * 4 * K, out);
    for (int64_t m = 0; m < M; m++)
      for (int64_t j = 0; j < 4; j++) store(m, b * 4 + j, out[m][j]);
  }
  for (int64_t n = blocks * 4; n < N; n++)
    for (int64_t m = 0; m < M; m++) {
      float s = 0;
      for (int64_t k = 0; k < K; k++) s += toF32(A[m * K + k]) * toF32(W[n * K + k]);
      store(m, n, s);
    }
}

}  // namespace lmf
