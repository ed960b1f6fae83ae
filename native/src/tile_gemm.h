// Register-blocked small matrix multiply for the attention tiles: C[M,N] (+)= op(A)[M,K] · B[K,N], all
// row-major with leading dimensions; op(A) is A, or A^T read from a [K, M] array (TA), which costs nothing
// here because A's values are broadcast one at a time anyway. Rows go in groups of 6 and columns in groups of
// kNV vectors, so the 6 × kNV accumulators stay in registers while K runs: B rows are loaded once per group and
// A values are broadcast. The vector width follows the instruction set this header is compiled for (16 floats
// with AVX-512's 32 registers, 8 with AVX2's 16, 4 with NEON's 32), and kNV keeps the accumulators within the
// register file (24 of 32, 12 of 16, 24 of 32). Columns that do not fill a vector use a plain loop. Beside it,
// the vector type vf and sumLanes4 (four dot products' lane sums at once) serve decoding's attention scores. With
// AVX512-BF16, tileGemmBf16 runs the same products on bf16 pairs.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>
#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace lmf {
// internal linkage: each instruction-set translation unit keeps its own compiled copy
namespace {

#if defined(__AVX512F__)
constexpr int kLanes = 16, kNV = 4;
#elif defined(__AVX2__)
constexpr int kLanes = 8, kNV = 2;
#else
constexpr int kLanes = 4, kNV = 4;
#endif
typedef float vf __attribute__((vector_size(kLanes * 4), aligned(4)));

// out[0..4) = the sum of each vector's lanes, for four vectors at once: pairwise adds halve all four together,
// where a sum per vector would take as many steps for one
inline void sumLanes4(const vf* v, float* out) {
#if defined(__AVX512F__) || defined(__AVX2__)
  __m256 h[4];
  for (int i = 0; i < 4; i++) {
#if defined(__AVX512F__)
    const __m512 w = (__m512)v[i];
    h[i] = _mm256_add_ps(_mm512_castps512_ps256(w), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(w), 1)));
#else
    h[i] = (__m256)v[i];
#endif
  }
  // lanes 0-3 of the result: each vector's low half summed; lanes 4-7: its high half
  const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
#elif defined(__aarch64__)
  vst1q_f32(out, vpaddq_f32(vpaddq_f32((float32x4_t)v[0], (float32x4_t)v[1]),
                            vpaddq_f32((float32x4_t)v[2], (float32x4_t)v[3])));
#else
  for (int i = 0; i < 4; i++) {
    out[i] = 0.0f;
    for (int l = 0; l < kLanes; l++) out[i] += v[i][l];
  }
#endif
}

template <int MR, int NV, bool TA>
inline void tileKernel(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t K,
                       bool accumulate) {
  vf acc[MR][NV];
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = accumulate ? *reinterpret_cast<const vf*>(C + r * ldc + v * kLanes) : vf{};
  for (int64_t k = 0; k < K; k++) {
    vf b[NV];
    for (int v = 0; v < NV; v++) b[v] = *reinterpret_cast<const vf*>(B + k * ldb + v * kLanes);
    for (int r = 0; r < MR; r++) {
      float a = TA ? A[k * lda + r] : A[r * lda + k];
      for (int v = 0; v < NV; v++) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++) *reinterpret_cast<vf*>(C + r * ldc + v * kLanes) = acc[r][v];
}

// body(std::integral_constant<int, R>(), i) for rows i..i+R of [0, M): groups of 6, then one of 4, 2 or 1 each
template <typename Body>
inline void inRowGroups(int64_t M, Body body) {
  int64_t i = 0;
  for (; i + 6 <= M; i += 6) body(std::integral_constant<int, 6>(), i);
  if (M - i >= 4) {
    body(std::integral_constant<int, 4>(), i);
    i += 4;
  }
  if (M - i >= 2) {
    body(std::integral_constant<int, 2>(), i);
    i += 2;
  }
  if (M - i == 1) body(std::integral_constant<int, 1>(), i);
}

template <int NV, bool TA>
inline void tileRows(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t M,
                     int64_t K, bool accumulate) {
  inRowGroups(M, [&](auto rows, int64_t i) {
    // row i of op(A) starts at A + i*lda, or at column i (A + i) when transposed
    const float* rowA = TA ? A + i : A + i * lda;
    tileKernel<decltype(rows)::value, NV, TA>(rowA, lda, B, ldb, C + i * ldc, ldc, K, accumulate);
  });
}

template <bool TA = false>
inline void tileGemm(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t M,
                     int64_t N, int64_t K, bool accumulate) {
  int64_t j = 0;
  for (; j + kNV * kLanes <= N; j += kNV * kLanes) tileRows<kNV, TA>(A, lda, B + j, ldb, C + j, ldc, M, K, accumulate);
  for (; j + kLanes <= N; j += kLanes) tileRows<1, TA>(A, lda, B + j, ldb, C + j, ldc, M, K, accumulate);
  if (j < N) {
    for (int64_t i = 0; i < M; i++)
      for (int64_t jj = j; jj < N; jj++) {
        float s = accumulate ? C[i * ldc + jj] : 0.0f;
        for (int64_t k = 0; k < K; k++) s += (TA ? A[k * lda + i] : A[i * lda + k]) * B[k * ldb + jj];
        C[i * ldc + jj] = s;
      }
  }
}

#if defined(__AVX512BF16__)
// The same products through bf16 dot products (vdpbf16ps), accumulating in f32: C[M,N] (+)= A[M,K] · B[K,N] with
// both operands as 32-bit words that each hold two consecutive K values (the lower index in the low half), the
// pairs one instruction multiplies: A as M rows of K2 words (lda words apart), B as K2 rows of N words (ldb apart).
// K2 = ceil(K / 2); for an odd K the second half of the last pair is a zero on at least one side. N is a multiple of
// 16; rows go in groups of 6 and columns in groups of 4 vectors, 24 accumulators of AVX-512's 32 registers.
template <int MR, int NV>
inline void tileKernelBf16(const uint32_t* A, int64_t lda, const uint32_t* B, int64_t ldb, float* C, int64_t ldc,
                           int64_t K2, bool accumulate) {
  __m512 acc[MR][NV];
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = accumulate ? _mm512_loadu_ps(C + r * ldc + v * 16) : _mm512_setzero_ps();
  for (int64_t k = 0; k < K2; k++) {
    __m512bh b[NV];
    for (int v = 0; v < NV; v++) b[v] = (__m512bh)_mm512_loadu_si512(B + k * ldb + v * 16);
    for (int r = 0; r < MR; r++) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(A[r * lda + k]));
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, b[v]);
    }
  }
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++) _mm512_storeu_ps(C + r * ldc + v * 16, acc[r][v]);
}

template <int NV>
inline void tileRowsBf16(const uint32_t* A, int64_t lda, const uint32_t* B, int64_t ldb, float* C, int64_t ldc,
                         int64_t M, int64_t K2, bool accumulate) {
  inRowGroups(M, [&](auto rows, int64_t i) {
    tileKernelBf16<decltype(rows)::value, NV>(A + i * lda, lda, B, ldb, C + i * ldc, ldc, K2, accumulate);
  });
}

inline void tileGemmBf16(const uint32_t* A, int64_t lda, const uint32_t* B, int64_t ldb, float* C, int64_t ldc,
                         int64_t M, int64_t N, int64_t K2, bool accumulate) {
  int64_t j = 0;
  for (; j + 64 <= N; j += 64) tileRowsBf16<4>(A, lda, B + j, ldb, C + j, ldc, M, K2, accumulate);
  for (; j < N; j += 16) tileRowsBf16<1>(A, lda, B + j, ldb, C + j, ldc, M, K2, accumulate);
}
#endif

}  // namespace
}  // namespace lmf
