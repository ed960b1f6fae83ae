// The arithmetic ceiling of this path: chains of independent fused multiply-adds (f32) and bf16 dot products into
// f32, with no memory traffic, on every OpenMP thread. Included once per instruction set (src/isa/*.cc) inside
// namespace lmf::LMF_ISA_NS, so each path measures the instructions its own kernels use.
#pragma once
#include <omp.h>
#include <cstdint>
#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace lmf {
namespace LMF_ISA_NS {
namespace {

// independent accumulators: more than the FMA latency (4) times the pipes (2), so the units never wait
constexpr int kChains = 12;

// one step of every chain; returns the FLOPs a step does
#if defined(__AVX512F__)
using F32Vec = __m512;
constexpr int kF32Lanes = 16;
inline F32Vec f32Set(float v) { return _mm512_set1_ps(v); }
inline F32Vec f32Fma(F32Vec a, F32Vec b, F32Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline float f32Sum(F32Vec v) {
  float t[16];
  _mm512_storeu_ps(t, v);
  float s = 0;
  for (float x : t) s += x;
  return s;
}
#elif defined(__AVX2__)
using F32Vec = __m256;
constexpr int kF32Lanes = 8;
inline F32Vec f32Set(float v) { return _mm256_set1_ps(v); }
inline F32Vec f32Fma(F32Vec a, F32Vec b, F32Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline float f32Sum(F32Vec v) {
  float t[8];
  _mm256_storeu_ps(t, v);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#elif defined(__aarch64__)
using F32Vec = float32x4_t;
constexpr int kF32Lanes = 4;
inline F32Vec f32Set(float v) { return vdupq_n_f32(v); }
inline F32Vec f32Fma(F32Vec a, F32Vec b, F32Vec c) { return vfmaq_f32(c, a, b); }
inline float f32Sum(F32Vec v) { return vaddvq_f32(v); }
#endif

float f32Chains(int64_t steps) {
  F32Vec acc[kChains];
  const F32Vec b = f32Set(1.0000001f), c = f32Set(1e-7f);
  for (int i = 0; i < kChains; i++) acc[i] = f32Set(static_cast<float>(i));
  for (int64_t s = 0; s < steps; s++)
#pragma GCC unroll 12
    for (int i = 0; i < kChains; i++) acc[i] = f32Fma(acc[i], b, c);
  float sum = 0;
  for (int i = 0; i < kChains; i++) sum += f32Sum(acc[i]);
  return sum;
}
constexpr double kF32FlopsPerStep = kChains * kF32Lanes * 2.0;

#if defined(__AVX512BF16__)
constexpr bool kHasBf16Dot = true;
// VDPBF16PS: 32 bf16 pairs into 16 f32 lanes, 64 FLOPs
constexpr double kBf16FlopsPerStep = kChains * 64.0;
float bf16Chains(int64_t steps) {
  __m512 acc[kChains];
  const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3380);
  for (int i = 0; i < kChains; i++) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  for (int64_t s = 0; s < steps; s++)
#pragma GCC unroll 12
    for (int i = 0; i < kChains; i++) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
  float sum = 0;
  for (int i = 0; i < kChains; i++) sum += f32Sum(acc[i]);
  return sum;
}
#elif defined(__ARM_FEATURE_BF16_VECTOR_ARITHMETIC)
constexpr bool kHasBf16Dot = true;
// BFDOT: 8 bf16 pairs into 4 f32 lanes, 16 FLOPs
constexpr double kBf16FlopsPerStep = kChains * 16.0;
float bf16Chains(int64_t steps) {
  float32x4_t acc[kChains];
  // the bit patterns come through a volatile so that the compiler cannot fold them into an fp16 vector immediate
  // (an FMOV .8h the bf16-only target cannot assemble)
  volatile uint16_t one = 0x3f80, small = 0x3380;
  const bfloat16x8_t x = vreinterpretq_bf16_u16(vdupq_n_u16(one)), y = vreinterpretq_bf16_u16(vdupq_n_u16(small));
  for (int i = 0; i < kChains; i++) acc[i] = vdupq_n_f32(static_cast<float>(i));
  for (int64_t s = 0; s < steps; s++)
#pragma GCC unroll 12
    for (int i = 0; i < kChains; i++) acc[i] = vbfdotq_f32(acc[i], x, y);
  float sum = 0;
  for (int i = 0; i < kChains; i++) sum += vaddvq_f32(acc[i]);
  return sum;
}
#else
constexpr bool kHasBf16Dot = false;
constexpr double kBf16FlopsPerStep = 0;
float bf16Chains(int64_t) { return 0; }
#endif

// One run of `chains` on every thread: seconds taken, and the threads that ran
struct Run {
  double seconds;
  int threads;
};
Run runOnAll(float (*chains)(int64_t), int64_t steps) {
  static volatile float sink = 0;
  float s = 0;
  int threads = 0;
  double t0 = omp_get_wtime();
#pragma omp parallel reduction(+ : s, threads)
  {
    s += chains(steps);
    threads += 1;
  }
  Run r{omp_get_wtime() - t0, threads};
  sink = sink + s;
  return r;
}

// GFLOP/s of `chains` on every thread: steps grow until a run lasts 0.1 s, then the best of three runs
double measure(float (*chains)(int64_t), double flopsPerStep) {
  int64_t steps = 1 << 16;
  Run r = runOnAll(chains, steps);
  while (r.seconds < 0.1 && steps < (int64_t(1) << 40)) {
    steps *= 2;
    r = runOnAll(chains, steps);
  }
  for (int rep = 0; rep < 3; rep++) {
    Run again = runOnAll(chains, steps);
    if (again.seconds < r.seconds) r = again;
  }
  return flopsPerStep * static_cast<double>(steps) * r.threads / r.seconds / 1e9;
}

}  // namespace

double peakGflops(bool bf16) {
  if (!bf16) return measure(f32Chains, kF32FlopsPerStep);
  return kHasBf16Dot ? measure(bf16Chains, kBf16FlopsPerStep) : 0.0;
}

}  // namespace LMF_ISA_NS
}  // namespace lmf
