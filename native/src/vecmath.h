// What GCC does not vectorise by itself without -ffast-math: exp (std::exp stays scalar; exp_approx is accurate
// to about 2 ulp on the range that softmax uses) and the largest of a row (`omp simd reduction(max)` stays scalar).
#pragma once
#include <cstdint>
#include <cstring>

namespace lmf {
// internal linkage: each instruction-set translation unit keeps its own compiled copy
namespace {

#pragma omp declare simd notinbranch
inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  float n = (x * 1.44269504088896341f + magic) - magic;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

// The largest of x[0, n), as std::max takes them one by one (NaNs skipped, -INFINITY for n = 0), in four
// independent 8-wide vectors: the scalar loop waits on each compare (a vocabulary's row of logits at a
// quarter of an element a cycle).
inline float maxOf(const float* x, int64_t n) {
  typedef float v8 __attribute__((vector_size(32), aligned(4)));
  const auto at = [x](int64_t j) { return *reinterpret_cast<const v8*>(x + j); };
  float r = -__builtin_inff();
  int64_t j = 0;
  if (n >= 32) {
    v8 m0 = at(0), m1 = at(8), m2 = at(16), m3 = at(24);
    for (j = 32; j + 32 <= n; j += 32) {
      const v8 a = at(j), b = at(j + 8), c = at(j + 16), d = at(j + 24);
      m0 = m0 < a ? a : m0;
      m1 = m1 < b ? b : m1;
      m2 = m2 < c ? c : m2;
      m3 = m3 < d ? d : m3;
    }
    m0 = m0 < m1 ? m1 : m0;
    m2 = m2 < m3 ? m3 : m2;
    m0 = m0 < m2 ? m2 : m0;
    for (int l = 0; l < 8; l++) r = r < m0[l] ? m0[l] : r;
  }
  for (; j < n; j++) r = r < x[j] ? x[j] : r;
  return r;
}

}  // namespace
}  // namespace lmf
