// Few-row products against a weight in Hugging Face's layout, C[m, n] (+)= A[m, :] · W[n, :] (+ bias[n]),
// for decoding: with one to four rows of activations the work is reading W once, so the kernel streams W's
// rows across the threads and keeps each row's dot products in registers; f32 accumulation always. W in f32, in
// bf16 (against f32 or bf16 rows), or in bitsandbytes' 4-bit codes (QLoRA bases: looked up in registers, never
// dequantised to memory).
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
#include <type_traits>
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
inline Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
inline Vec broadcast(float v) { return _mm512_set1_ps(v); }
inline Vec loadInt8(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
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
// 2·kLanes bf16 values as f32: the even elements (a 32-bit word's low half, shifted up) and the odd ones (its high
// half, masked): bf16 is the upper half of an f32
inline void loadPairs(const uint16_t* p, Vec& even, Vec& odd) {
  __m512i w = _mm512_loadu_si512(p);
  even = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  odd = _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
}
#elif defined(__aarch64__)
using Vec = float32x4_t;
constexpr int kLanes = 4;
inline Vec zero() { return vdupq_n_f32(0.0f); }
inline Vec fma(Vec a, Vec b, Vec c) { return vfmaq_f32(c, a, b); }
inline Vec add(Vec a, Vec b) { return vaddq_f32(a, b); }
inline Vec mul(Vec a, Vec b) { return vmulq_f32(a, b); }
inline Vec broadcast(float v) { return vdupq_n_f32(v); }
inline Vec loadInt8(const int8_t* p) {  // four bytes, not eight: a row's last chunk may end the buffer
  int32_t four;
  std::memcpy(&four, p, sizeof four);
  return vcvtq_f32_s32(vmovl_s16(vget_low_s16(vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(four))))));
}
inline float reduce(Vec v) { return vaddvq_f32(v); }
inline Vec load(const float* p) { return vld1q_f32(p); }
inline void loadPairs(const uint16_t* p, Vec& even, Vec& odd) {
  uint32x4_t w = vreinterpretq_u32_u16(vld1q_u16(p));
  even = vreinterpretq_f32_u32(vshlq_n_u32(w, 16));
  odd = vreinterpretq_f32_u32(vandq_u32(w, vdupq_n_u32(0xFFFF0000u)));
}
#else
using Vec = __m256;
constexpr int kLanes = 8;
inline Vec zero() { return _mm256_setzero_ps(); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
inline Vec broadcast(float v) { return _mm256_set1_ps(v); }
inline Vec loadInt8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
inline float reduce(Vec v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline Vec load(const float* p) { return _mm256_loadu_ps(p); }
inline void loadPairs(const uint16_t* p, Vec& even, Vec& odd) {
  __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  even = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  odd = _mm256_castsi256_ps(_mm256_and_si256(w, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
}
#endif

// Each thread reads its share of W's rows front to back, one row at a time, so the weight arrives as one sequential
// stream (the hardware prefetcher's best case: interleaving a few rows' streams measured a third slower); a row's
// chunks are used by all M rows of A while in registers. The row kernels below take M as a template argument so the
// accumulators stay in registers: two chains per row of A, four where M <= 2 (unrolled by two chunks).
template <int M>
constexpr int kUnroll = M <= 2 ? 2 : 1;

// Each row kernel also prefetches its weight row this far ahead of its reads: the hardware prefetcher stops at
// every 4 KiB page and starts over with each matrix (a C probe of a decode step's 268 MB weight stream, three
// rounds: 12.8 / 13.3 / 14.2 ms without, 12.1 / 12.4 / 13.4 with, on 2 threads). Prefetching past the end of the
// weight is harmless (a prefetch never faults).
constexpr int64_t kPrefetchAhead = 1024;
template <typename T>
inline void prefetchAhead(const T* p, int64_t elements) {
  const char* c = reinterpret_cast<const char*>(p) + kPrefetchAhead;
  for (int64_t b = 0; b < elements * static_cast<int64_t>(sizeof(T)); b += 64) __builtin_prefetch(c + b, 0, 3);
}

// What a row kernel reads per vector step of K: f32 values multiplied and added (FMA), or bf16 pairs through bf16
// dot products
struct F32Elements {
  using Elem = float;
  using Chunk = Vec;
  static constexpr int64_t width = kLanes;
  static Chunk read(const float* p) { return load(p); }
  static Vec step(Vec acc, Chunk x, Chunk w) { return fma(x, w, acc); }
  static float value(float v) { return v; }
};

#if defined(__AVX512BF16__)
struct Bf16Elements {
  using Elem = uint16_t;
  using Chunk = __m512bh;
  static constexpr int64_t width = 32;
  static Chunk read(const uint16_t* p) { return (__m512bh)_mm512_loadu_si512(p); }
  static Vec step(Vec acc, Chunk x, Chunk w) { return _mm512_dpbf16_ps(acc, x, w); }
  static float value(uint16_t v) { return bf16_to_f32(v); }
};
#elif defined(__ARM_FEATURE_BF16_VECTOR_ARITHMETIC)
struct Bf16Elements {  // BFDOT
  using Elem = uint16_t;
  using Chunk = bfloat16x8_t;
  static constexpr int64_t width = 8;
  static Chunk read(const uint16_t* p) { return vreinterpretq_bf16_u16(vld1q_u16(p)); }
  static Vec step(Vec acc, Chunk x, Chunk w) { return vbfdotq_f32(acc, x, w); }
  static float value(uint16_t v) { return bf16_to_f32(v); }
};
#endif

// A weight row as rowDots reads it: chunks of E's width and single values, from its own element type
template <typename E>
struct PlainRow {
  const typename E::Elem* w;
  typename E::Chunk chunk(int64_t k) const { return E::read(w + k); }
  float value(int64_t j) const { return E::value(w[j]); }
  void prefetch(int64_t k, int64_t n) const { prefetchAhead(w + k, n); }
};

// one weight row against M rows of a (of E's element type)
template <int M, typename E, typename Row>
inline void rowDotsOf(const typename E::Elem* a, int64_t K, const Row& w, float* out) {
  constexpr int U = kUnroll<M>;
  constexpr int64_t step = 2 * U * E::width;
  Vec acc[M][2 * U];
  for (int m = 0; m < M; m++)
    for (int u = 0; u < 2 * U; u++) acc[m][u] = zero();
  int64_t k = 0;
  for (; k + step <= K; k += step) {
    w.prefetch(k, step);
    for (int u = 0; u < 2 * U; u++) {
      const typename E::Chunk wv = w.chunk(k + u * E::width);
      for (int m = 0; m < M; m++) acc[m][u] = E::step(acc[m][u], E::read(a + m * K + k + u * E::width), wv);
    }
  }
  // the tail's weights as plain floats first: its loop then has one shape for every kind of row (the compiler
  // vectorises, or fuses, a loop by its shape, and a different choice would give other bits)
  float tail[step];
  for (int64_t j = k; j < K; j++) tail[j - k] = w.value(j);
  for (int m = 0; m < M; m++) {
    Vec sum = acc[m][0];
    for (int u = 1; u < 2 * U; u++) sum = add(sum, acc[m][u]);
    float r = reduce(sum);
    for (int64_t j = k; j < K; j++) r += E::value(a[m * K + j]) * tail[j - k];
    out[m] = r;
  }
}

template <int M, typename E>
inline void rowDots(const typename E::Elem* a, int64_t K, const typename E::Elem* w, float* out) {
  rowDotsOf<M, E>(a, K, PlainRow<E>{w}, out);
}

// An 8-bit weight row (codes, and the row's absmax scale): each value made (code · scale) / 127 as
// dequantizeInt8Rows makes it, so that the sums are a dequantised row's, bit for bit
struct Int8Row {
  const int8_t* codes;
  float scale;
  static constexpr float kInv127 = 1.0f / 127.0f;
  Vec chunk(int64_t k) const { return mul(mul(loadInt8(codes + k), broadcast(scale)), broadcast(kInv127)); }
  float value(int64_t j) const { return (static_cast<float>(codes[j]) * scale) * kInv127; }
  void prefetch(int64_t k, int64_t n) const { prefetchAhead(codes + k, n); }
};

// f32 rows against a bf16 weight row without widening the weight element by element: one vector load holds
// 2·kLanes bf16 values, whose even and odd elements become f32 in one bit operation each (loadPairs). The rows are
// split once per call into that order: per chunk of 2·kLanes values, the even elements, then the odd ones; the
// tail past the last whole chunk stays in place.
constexpr int64_t kPairChunk = 2 * kLanes;
template <typename T>
void splitPairs(const T* a, int64_t M, int64_t K, float* split) {
  const int64_t whole = K - K % kPairChunk;
  for (int64_t m = 0; m < M; m++) {
    const T* x = a + m * K;
    float* s = split + m * K;
    for (int64_t c = 0; c < whole; c += kPairChunk)
      for (int64_t i = 0; i < kLanes; i++) {
        s[c + i] = toF32(x[c + 2 * i]);
        s[c + kLanes + i] = toF32(x[c + 2 * i + 1]);
      }
    for (int64_t k = whole; k < K; k++) s[k] = toF32(x[k]);
  }
}

// one bf16 weight row against M split rows: even and odd elements accumulate apart and meet at the end
template <int M>
inline void rowDotsPairs(const float* split, int64_t K, const uint16_t* w, float* out) {
  constexpr int U = kUnroll<M>;
  const int64_t whole = K - K % (U * kPairChunk);
  Vec acc[M][2 * U];
  for (int m = 0; m < M; m++)
    for (int u = 0; u < 2 * U; u++) acc[m][u] = zero();
  int64_t k = 0;
  for (; k < whole; k += U * kPairChunk) {
    prefetchAhead(w + k, U * kPairChunk);
    for (int u = 0; u < U; u++) {
      Vec we, wo;
      loadPairs(w + k + u * kPairChunk, we, wo);
      for (int m = 0; m < M; m++) {
        const float* x = split + m * K + k + u * kPairChunk;
        acc[m][2 * u] = fma(load(x), we, acc[m][2 * u]);
        acc[m][2 * u + 1] = fma(load(x + kLanes), wo, acc[m][2 * u + 1]);
      }
    }
  }
  // a last whole chunk when unrolled (split keeps every whole chunk in pair order)
  const bool lastChunk = k + kPairChunk <= K;
  Vec we, wo;
  if (lastChunk) loadPairs(w + k, we, wo);
  for (int m = 0; m < M; m++) {
    Vec sum = acc[m][0];
    for (int u = 1; u < 2 * U; u++) sum = add(sum, acc[m][u]);
    const float* x = split + m * K;
    if (lastChunk) sum = fma(load(x + k + kLanes), wo, fma(load(x + k), we, sum));
    float r = reduce(sum);
    for (int64_t j = lastChunk ? k + kPairChunk : k; j < K; j++) r += x[j] * bf16_to_f32(w[j]);
    out[m] = r;
  }
}

// C (+)= A · Wᵀ (+ bias) for M = 1..kGemvMaxRows: rows(n, out) gives the M dot products of weight row n, the
// weight rows split across the threads
template <typename RowDots>
void gemvRows(float* C, int64_t M, int64_t N, int64_t K, bool accumulate, const float* bias, RowDots rows) {
  splitRange(N, (1 << 16) / std::max<int64_t>(K, 1), [&](int64_t from, int64_t to) {
    for (int64_t n = from; n < to; n++) {
      float out[kGemvMaxRows];
      rows(n, out);
      for (int64_t m = 0; m < M; m++) {
        const float v = out[m] + (bias ? bias[n] : 0.0f);
        C[m * N + n] = accumulate ? C[m * N + n] + v : v;
      }
    }
  });
}

// body(std::integral_constant<int, M>()): the row kernels instantiated for this call's number of rows
template <typename Body>
void withRows(int64_t M, Body body) {
  switch (M) {
    case 1: body(std::integral_constant<int, 1>()); break;
    case 2: body(std::integral_constant<int, 2>()); break;
    case 3: body(std::integral_constant<int, 3>()); break;
    case 4: body(std::integral_constant<int, 4>()); break;
    default: break;  // callers send 1 to kGemvMaxRows rows
  }
}

// a bf16 weight against rows of A (f32 or bf16): through bf16 dot products where the CPU has them (f32 rows
// rounded to bf16 first, as a bf16 product reads them), else through the split pairs
template <typename T>
void gemvBf16Weight(const T* A, const uint16_t* W, float* C, int64_t M, int64_t N, int64_t K, bool accumulate,
                    const float* bias) {
#if defined(__AVX512BF16__) || defined(__ARM_FEATURE_BF16_VECTOR_ARITHMETIC)
  std::vector<uint16_t> rounded;
  const uint16_t* a;
  if constexpr (std::is_same_v<T, uint16_t>) {
    a = A;
  } else {
    rounded.resize(static_cast<size_t>(M * K));
    for (int64_t i = 0; i < M * K; i++) rounded[i] = f32_to_bf16(A[i]);
    a = rounded.data();
  }
  withRows(M, [&](auto rows) {
    constexpr int R = decltype(rows)::value;
    gemvRows(C, R, N, K, accumulate, bias, [&](int64_t n, float* out) { rowDots<R, Bf16Elements>(a, K, W + n * K, out); });
  });
#else
  std::vector<float> split(static_cast<size_t>(M * K));
  splitPairs(A, M, K, split.data());
  withRows(M, [&](auto rows) {
    constexpr int R = decltype(rows)::value;
    gemvRows(C, R, N, K, accumulate, bias,
             [&](int64_t n, float* out) { rowDotsPairs<R>(split.data(), K, W + n * K, out); });
  });
#endif
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
// AVX2 has no 16-entry permute of floats. The table is kept as four byte planes (byte k of every entry), looked up
// with byte shuffles, and the bytes woven back into floats: the same values in the same lanes as two cross-lane
// 8-entry permutes and a blend, which are slow on Zen 1's 128-bit units (a whole QLoRA decoding step there went
// 22-24% faster with the shuffles).
struct CodeTable {
  __m128i plane[4];
  explicit CodeTable(const float* table) {
    alignas(16) uint8_t bytes[4][16];
    for (int i = 0; i < 16; i++) {
      uint32_t bits;
      std::memcpy(&bits, table + i, sizeof bits);
      for (int k = 0; k < 4; k++) bytes[k][i] = static_cast<uint8_t>(bits >> (8 * k));
    }
    for (int k = 0; k < 4; k++) plane[k] = _mm_load_si128(reinterpret_cast<const __m128i*>(bytes[k]));
  }
  void lookup(const uint8_t* p, Vec& hi, Vec& lo) const {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)), nibble = _mm_set1_epi8(15);
    // the 8 high nibbles, then the 8 low ones
    const __m128i codes = _mm_unpacklo_epi64(_mm_and_si128(_mm_srli_epi16(b, 4), nibble), _mm_and_si128(b, nibble));
    const __m128i b0 = _mm_shuffle_epi8(plane[0], codes), b1 = _mm_shuffle_epi8(plane[1], codes);
    const __m128i b2 = _mm_shuffle_epi8(plane[2], codes), b3 = _mm_shuffle_epi8(plane[3], codes);
    // bytes 0|1 and 2|3 of each value as 16-bit halves, then the halves as 32-bit floats
    const __m128i low01 = _mm_unpacklo_epi8(b0, b1), high01 = _mm_unpackhi_epi8(b0, b1);
    const __m128i low23 = _mm_unpacklo_epi8(b2, b3), high23 = _mm_unpackhi_epi8(b2, b3);
    hi = _mm256_castsi256_ps(_mm256_set_m128i(_mm_unpackhi_epi16(low01, low23), _mm_unpacklo_epi16(low01, low23)));
    lo = _mm256_castsi256_ps(_mm256_set_m128i(_mm_unpackhi_epi16(high01, high23), _mm_unpacklo_epi16(high01, high23)));
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
  splitRange(N, (1 << 16) / std::max<int64_t>(K, 1), [&](int64_t from, int64_t to) {
    // the row's block scales, expanded here when double-quantized (the weight's codes are read once anyway)
    std::vector<float> rowScales(absmax.values ? 0 : static_cast<size_t>(blocksPerRow));
    for (int64_t n = from; n < to; n++) {
      const float* scales = absmax.values ? absmax.values + n * blocksPerRow : rowScales.data();
      if (!absmax.values) absmax.expand(n * blocksPerRow, blocksPerRow, rowScales.data());
      float sum[kGemvMaxRows];
      rowDots(codes, packed + n * half, scales, split.data(), K, blockBytes, blocksPerRow, sum);
      for (int64_t m = 0; m < M; m++) {
        float v = sum[m] + (bias ? bias[n] : 0.0f);
        C[m * N + n] = accumulate ? C[m * N + n] + v : v;
      }
    }
  });
}

void gemvF32(const float* A, const float* W, float* C, int64_t M, int64_t N, int64_t K, bool accumulate, const float* bias) {
  withRows(M, [&](auto rows) {
    constexpr int R = decltype(rows)::value;
    gemvRows(C, R, N, K, accumulate, bias, [&](int64_t n, float* out) { rowDots<R, F32Elements>(A, K, W + n * K, out); });
  });
}
void gemvInt8(const float* A, const int8_t* codes, const float* scales, float* C, int64_t M, int64_t N, int64_t K,
              bool accumulate, const float* bias) {
  withRows(M, [&](auto rows) {
    constexpr int R = decltype(rows)::value;
    gemvRows(C, R, N, K, accumulate, bias,
             [&](int64_t n, float* out) { rowDotsOf<R, F32Elements>(A, K, Int8Row{codes + n * K, scales[n]}, out); });
  });
}
void gemvBf16(const uint16_t* A, const uint16_t* W, float* C, int64_t M, int64_t N, int64_t K, bool accumulate,
              const float* bias) {
  gemvBf16Weight(A, W, C, M, N, K, accumulate, bias);
}
void gemvF32Bf16(const float* A, const uint16_t* W, float* C, int64_t M, int64_t N, int64_t K, bool accumulate,
                 const float* bias) {
  gemvBf16Weight(A, W, C, M, N, K, accumulate, bias);
}

}  // namespace LMF_ISA_NS
}  // namespace lmf
