// Few-row products against a weight in Hugging Face's layout, C[m, n] (+)= A[m, :] · W[n, :] (+ bias[n]),
// for decoding: with one to four rows of activations the work is reading W once, so the kernel streams W's
// rows across the threads and keeps each row's dot products in registers; f32 accumulation always. W in f32, in
// bf16, or in bitsandbytes' 4-bit codes (QLoRA bases: looked up in registers, never dequantised to memory).
//
// Plain pointers and sizes, no N-API. This header is compiled once per instruction set (native/src/isa/*.cc,
// each with its own -march) inside the namespace LMF_ISA_NS; cpu.cc picks one at load time. The code below
// chooses its vector width from the macros that -march defines: AVX-512 (+ AVX512-BF16 dot products) or
// AVX2 + FMA, or NEON on arm64 (BFDOT bf16 dot products where -march enables them).
#ifndef LMF_ISA_NS
#error "define LMF_ISA_NS before including gemv_kernels.h"
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif
#include <omp.h>
#include <cstdint>
#include <cstring>
#include <vector>
#include "kernel_support.h"
#include "kernels.h"

namespace lmf {
namespace LMF_ISA_NS {
namespace {

inline float toF32(float v) { return v; }
inline float toF32(uint16_t v) { return bf16_to_f32(v); }

#if defined(__AVX512F__)
using Vec = __m512;
constexpr int kLanes = 16;
inline Vec zero() { return _mm512_setzero_ps(); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline Vec broadcast(float v) { return _mm512_set1_ps(v); }
// a tree of lane swaps (GCC 12's _mm512_reduce_add_ps warns of an uninitialised operand where it is inlined)
inline float reduce(Vec v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));
  __m128 s = _mm512_castps512_ps128(v);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline Vec load(const float* p) { return _mm512_loadu_ps(p); }
// 16 bf16 values widened to f32: bf16 is the upper half of an f32
inline Vec load(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}
#elif defined(__aarch64__)
using Vec = float32x4_t;
constexpr int kLanes = 4;
inline Vec zero() { return vdupq_n_f32(0.0f); }
inline Vec fma(Vec a, Vec b, Vec c) { return vfmaq_f32(c, a, b); }
inline Vec add(Vec a, Vec b) { return vaddq_f32(a, b); }
inline Vec broadcast(float v) { return vdupq_n_f32(v); }
inline float reduce(Vec v) { return vaddvq_f32(v); }
inline Vec load(const float* p) { return vld1q_f32(p); }
inline Vec load(const uint16_t* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
#else
using Vec = __m256;
constexpr int kLanes = 8;
inline Vec zero() { return _mm256_setzero_ps(); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline Vec broadcast(float v) { return _mm256_set1_ps(v); }
inline float reduce(Vec v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline Vec load(const float* p) { return _mm256_loadu_ps(p); }
inline Vec load(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}
#endif

// dot products of rows a[0..M) with 4 consecutive weight rows w0..w3, each K long (f32 FMA on widened values)
template <typename T>
inline void dots4(const T* a, int64_t M, int64_t K, const T* w, float out[kGemvMaxRows][4]) {
  for (int64_t m = 0; m < M; m++) {
    Vec s0 = zero(), s1 = s0, s2 = s0, s3 = s0;
    const T* x = a + m * K;
    int64_t k = 0;
    for (; k + kLanes <= K; k += kLanes) {
      Vec xv = load(x + k);
      s0 = fma(xv, load(w + k), s0);
      s1 = fma(xv, load(w + K + k), s1);
      s2 = fma(xv, load(w + 2 * K + k), s2);
      s3 = fma(xv, load(w + 3 * K + k), s3);
    }
    float r[4] = {reduce(s0), reduce(s1), reduce(s2), reduce(s3)};
    for (; k < K; k++)
      for (int j = 0; j < 4; j++) r[j] += toF32(x[k]) * toF32(w[j * K + k]);
    for (int j = 0; j < 4; j++) out[m][j] = r[j];
  }
}

#if defined(__AVX512BF16__)
// bf16 pairs multiplied and summed into f32 lanes in one instruction
template <>
inline void dots4<uint16_t>(const uint16_t* a, int64_t M, int64_t K, const uint16_t* w, float out[kGemvMaxRows][4]) {
  for (int64_t m = 0; m < M; m++) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const uint16_t* x = a + m * K;
    int64_t k = 0;
    auto pairs = [](const uint16_t* p) { return (__m512bh)_mm512_loadu_si512(p); };
    for (; k + 32 <= K; k += 32) {
      __m512bh xv = pairs(x + k);
      s0 = _mm512_dpbf16_ps(s0, xv, pairs(w + k));
      s1 = _mm512_dpbf16_ps(s1, xv, pairs(w + K + k));
      s2 = _mm512_dpbf16_ps(s2, xv, pairs(w + 2 * K + k));
      s3 = _mm512_dpbf16_ps(s3, xv, pairs(w + 3 * K + k));
    }
    float r[4] = {reduce(s0), reduce(s1), reduce(s2), reduce(s3)};
    for (; k < K; k++)
      for (int j = 0; j < 4; j++) r[j] += bf16_to_f32(x[k]) * bf16_to_f32(w[j * K + k]);
    for (int j = 0; j < 4; j++) out[m][j] = r[j];
  }
}
#elif defined(__ARM_FEATURE_BF16_VECTOR_ARITHMETIC)
// BFDOT: pairs of bf16 multiplied and summed into f32 lanes
template <>
inline void dots4<uint16_t>(const uint16_t* a, int64_t M, int64_t K, const uint16_t* w, float out[kGemvMaxRows][4]) {
  for (int64_t m = 0; m < M; m++) {
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
    const uint16_t* x = a + m * K;
    int64_t k = 0;
    auto pairs = [](const uint16_t* p) { return vreinterpretq_bf16_u16(vld1q_u16(p)); };
    for (; k + 8 <= K; k += 8) {
      bfloat16x8_t xv = pairs(x + k);
      s0 = vbfdotq_f32(s0, xv, pairs(w + k));
      s1 = vbfdotq_f32(s1, xv, pairs(w + K + k));
      s2 = vbfdotq_f32(s2, xv, pairs(w + 2 * K + k));
      s3 = vbfdotq_f32(s3, xv, pairs(w + 3 * K + k));
    }
    float r[4] = {vaddvq_f32(s0), vaddvq_f32(s1), vaddvq_f32(s2), vaddvq_f32(s3)};
    for (; k < K; k++)
      for (int j = 0; j < 4; j++) r[j] += bf16_to_f32(x[k]) * bf16_to_f32(w[j * K + k]);
    for (int j = 0; j < 4; j++) out[m][j] = r[j];
  }
}
#endif

// weight rows in blocks of four across the threads, the last N % 4 rows one at a time
template <typename T>
void gemv(const T* A, const T* W, float* C, int64_t M, int64_t N, int64_t K, bool accumulate, const float* bias) {
  int64_t blocks = N / 4;
  auto store = [&](int64_t m, int64_t n, float v) {
    v += bias ? bias[n] : 0.0f;
    C[m * N + n] = accumulate ? C[m * N + n] + v : v;
  };
#pragma omp parallel for schedule(static) if (N * K > (1 << 16))
  for (int64_t b = 0; b < blocks; b++) {
    float out[kGemvMaxRows][4];
    dots4<T>(A, M, K, W + b * 4 * K, out);
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

// bitsandbytes 4-bit weights: each group of 2·kGroupBytes codes (kGroupBytes bytes, the even element in the high
// nibble) is looked up in the 16-entry table as two vectors, high nibbles and low nibbles, to be multiplied by the
// even and the odd elements of x (split once per call); each block's sum is scaled by its absmax at the end
#if defined(__AVX512F__)
constexpr int kGroupBytes = 16;
struct CodeTable {
  __m512 t;
  explicit CodeTable(const float* table) : t(_mm512_loadu_ps(table)) {}
  // the table values of the high and the low nibbles of 16 bytes
  void lookup(const uint8_t* p, Vec& hi, Vec& lo) const {
    __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    hi = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), t);
    lo = _mm512_permutexvar_ps(_mm512_and_si512(b, _mm512_set1_epi32(15)), t);
  }
};
#elif defined(__aarch64__)
constexpr int kGroupBytes = 4;
struct CodeTable {
  const float* t;
  explicit CodeTable(const float* table) : t(table) {}
  void lookup(const uint8_t* p, Vec& hi, Vec& lo) const {
    const float h[4] = {t[p[0] >> 4], t[p[1] >> 4], t[p[2] >> 4], t[p[3] >> 4]};
    const float l[4] = {t[p[0] & 15], t[p[1] & 15], t[p[2] & 15], t[p[3] & 15]};
    hi = vld1q_f32(h);
    lo = vld1q_f32(l);
  }
};
#else
constexpr int kGroupBytes = 8;
struct CodeTable {
  __m256 low8, high8;  // table[0..8) and table[8..16)
  explicit CodeTable(const float* table) : low8(_mm256_loadu_ps(table)), high8(_mm256_loadu_ps(table + 8)) {}
  static __m256 pick(__m256 low8, __m256 high8, __m256i code) {
    // bit 3 of the code, moved to the sign bit, chooses the half
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(low8, code), _mm256_permutevar8x32_ps(high8, code),
                            _mm256_castsi256_ps(_mm256_slli_epi32(code, 28)));
  }
  void lookup(const uint8_t* p, Vec& hi, Vec& lo) const {
    __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    hi = pick(low8, high8, _mm256_srli_epi32(b, 4));
    lo = pick(low8, high8, _mm256_and_si256(b, _mm256_set1_epi32(15)));
  }
};
#endif

// one weight row against M rows of x (split into even and odd halves): per block, the high and the low nibbles
// accumulate apart (independent chains), then the block's sum is scaled by its absmax into the row's accumulator
template <int M>
inline void dots4bit(const CodeTable& codes, const uint8_t* row, const float* scale, const float* split, int64_t K,
                     int64_t blockBytes, int64_t blocksPerRow, float* out) {
  const int64_t half = K / 2;
  Vec acc[M];
  for (int m = 0; m < M; m++) acc[m] = zero();
  for (int64_t b = 0; b < blocksPerRow; b++) {
    Vec evens[M], odds[M];
    for (int m = 0; m < M; m++) evens[m] = odds[m] = zero();
    for (int64_t g = b * blockBytes; g < (b + 1) * blockBytes; g += kGroupBytes) {
      Vec hi, lo;
      codes.lookup(row + g, hi, lo);
      for (int m = 0; m < M; m++) {
        evens[m] = fma(hi, load(split + m * K + g), evens[m]);
        odds[m] = fma(lo, load(split + m * K + half + g), odds[m]);
      }
    }
    const Vec s = broadcast(scale[b]);
    for (int m = 0; m < M; m++) acc[m] = fma(add(evens[m], odds[m]), s, acc[m]);
  }
  for (int m = 0; m < M; m++) out[m] = reduce(acc[m]);
}

}  // namespace

void gemv4bit(const float* A, const uint8_t* packed, const BlockScales& absmax, const float* table, int64_t blocksize,
              float* C, int64_t M, int64_t N, int64_t K, bool accumulate, const float* bias) {
  // x split into its even and odd elements, the order the nibbles come in
  const int64_t half = K / 2;
  std::vector<float> split(static_cast<size_t>(M * K));
  for (int64_t m = 0; m < M; m++)
    for (int64_t j = 0; j < half; j++) {
      split[m * K + j] = A[m * K + 2 * j];
      split[m * K + half + j] = A[m * K + 2 * j + 1];
    }
  const CodeTable codes(table);
  const int64_t blockBytes = blocksize / 2, blocksPerRow = K / blocksize;
  using Dots = void (*)(const CodeTable&, const uint8_t*, const float*, const float*, int64_t, int64_t, int64_t, float*);
  const Dots dots[kGemvMaxRows] = {dots4bit<1>, dots4bit<2>, dots4bit<3>, dots4bit<4>};
  const Dots rowDots = dots[M - 1];
#pragma omp parallel if (N * K > (1 << 16))
  {
    // the row's block scales, expanded here when double-quantized (the weight's codes are read once anyway)
    std::vector<float> rowScales(absmax.values ? 0 : static_cast<size_t>(blocksPerRow));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
      const float* scales = absmax.values ? absmax.values + n * blocksPerRow : rowScales.data();
      if (!absmax.values) absmax.expand(n * blocksPerRow, blocksPerRow, rowScales.data());
      float sum[kGemvMaxRows];
      rowDots(codes, packed + n * half, scales, split.data(), K, blockBytes, blocksPerRow, sum);
      for (int64_t m = 0; m < M; m++) {
        float v = sum[m] + (bias ? bias[n] : 0.0f);
        C[m * N + n] = accumulate ? C[m * N + n] + v : v;
      }
    }
  }
}

void gemvF32(const float* A, const float* W, float* C, int64_t M, int64_t N, int64_t K, bool accumulate, const float* bias) {
  gemv(A, W, C, M, N, K, accumulate, bias);
}
void gemvBf16(const uint16_t* A, const uint16_t* W, float* C, int64_t M, int64_t N, int64_t K, bool accumulate,
              const float* bias) {
  gemv(A, W, C, M, N, K, accumulate, bias);
}

}  // namespace LMF_ISA_NS
}  // namespace lmf
