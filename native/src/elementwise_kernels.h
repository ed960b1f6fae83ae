// Element-wise kernels: dtype conversion, non-finite count, scaled adds, SwiGLU, GeGLU, embedding gather and
// scatter-add, dropout. Plain pointers and sizes; elementwise.cc binds them.
#pragma once
#include <omp.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include "kernel_support.h"
#include "vecmath.h"

namespace lmf {
namespace {

// Loops shorter than this run on one thread: waking the pool costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;

inline void toBf16(const float* src, uint16_t* dst, int64_t n) {
  splitRange(n, kParallelMin, [=](int64_t from, int64_t to) {
#pragma omp simd
    for (int64_t i = from; i < to; i++) dst[i] = f32_to_bf16(src[i]);
  });
}

inline void toF32(const uint16_t* src, float* dst, int64_t n) {
  splitRange(n, kParallelMin, [=](int64_t from, int64_t to) {
#pragma omp simd
    for (int64_t i = from; i < to; i++) dst[i] = bf16_to_f32(src[i]);
  });
}

// How many values are NaN or infinite (exponent bits all ones): a load-time check of every weight.
inline int64_t countNonFiniteBf16(const uint16_t* x, int64_t n) {
  int64_t bad = 0;
#pragma omp parallel for simd if (n > kParallelMin) schedule(static) reduction(+ : bad)
  for (int64_t i = 0; i < n; i++) bad += (x[i] & 0x7f80u) == 0x7f80u;
  return bad;
}
inline int64_t countNonFiniteF32(const uint32_t* x, int64_t n) {
  int64_t bad = 0;
#pragma omp parallel for simd if (n > kParallelMin) schedule(static) reduction(+ : bad)
  for (int64_t i = 0; i < n; i++) bad += (x[i] & 0x7f800000u) == 0x7f800000u;
  return bad;
}

// out = a*x + b*y (out may alias x or y); y null means out = a*x
inline void axpby(const float* x, const float* y, float* out, int64_t n, float a, float b) {
  if (y) {
    splitRange(n, kParallelMin, [=](int64_t from, int64_t to) {
#pragma omp simd
      for (int64_t i = from; i < to; i++) out[i] = a * x[i] + b * y[i];
    });
  } else {
    splitRange(n, kParallelMin, [=](int64_t from, int64_t to) {
#pragma omp simd
      for (int64_t i = from; i < to; i++) out[i] = a * x[i];
    });
  }
}

inline void fill(float* x, int64_t n, float v) {
  splitRange(n, kParallelMin, [=](int64_t from, int64_t to) {
#pragma omp simd
    for (int64_t i = from; i < to; i++) x[i] = v;
  });
}

#pragma omp declare simd notinbranch
inline float sigmoid(float g) { return 1.0f / (1.0f + exp_approx(-g)); }

// out = silu(gate) * up
inline void swigluForward(const float* g, const float* u, float* out, int64_t n) {
  splitRange(n, kParallelMin, [=](int64_t from, int64_t to) {
#pragma omp simd
    for (int64_t i = from; i < to; i++) out[i] = g[i] * sigmoid(g[i]) * u[i];
  });
}

inline void swigluBackward(const float* g, const float* u, const float* dout, float* dg, float* du, int64_t n) {
  splitRange(n, kParallelMin, [=](int64_t from, int64_t to) {
#pragma omp simd
    for (int64_t i = from; i < to; i++) {
      float s = sigmoid(g[i]);
      float d = dout[i];
      du[i] = d * g[i] * s;
      dg[i] = d * u[i] * s * (1.0f + g[i] * (1.0f - s));
    }
  });
}

// out = sigmoid(gate) * up (Qwen3.5's attention output gate)
inline void sigmoidGateForward(const float* g, const float* u, float* out, int64_t n) {
  splitRange(n, kParallelMin, [=](int64_t from, int64_t to) {
#pragma omp simd
    for (int64_t i = from; i < to; i++) out[i] = sigmoid(g[i]) * u[i];
  });
}

inline void sigmoidGateBackward(const float* g, const float* u, const float* dout, float* dg, float* du, int64_t n) {
  splitRange(n, kParallelMin, [=](int64_t from, int64_t to) {
#pragma omp simd
    for (int64_t i = from; i < to; i++) {
      float s = sigmoid(g[i]);
      du[i] = dout[i] * s;
      dg[i] = dout[i] * u[i] * s * (1.0f - s);
    }
  });
}

// GELU with the tanh approximation, as 0.5x(1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi)(x + 0.044715x^3).
constexpr float kGeluC = 0.7978845608028654f, kGeluA = 0.044715f;

// out = gelu_tanh(gate) * up (Gemma's GeGLU)
inline void gegluForward(const float* g, const float* u, float* out, int64_t n) {
  splitRange(n, kParallelMin, [=](int64_t from, int64_t to) {
#pragma omp simd
    for (int64_t i = from; i < to; i++) {
      float x = g[i];
      out[i] = x * sigmoid(2.0f * kGeluC * (x + kGeluA * x * x * x)) * u[i];
    }
  });
}

inline void gegluBackward(const float* g, const float* u, const float* dout, float* dg, float* du, int64_t n) {
  splitRange(n, kParallelMin, [=](int64_t from, int64_t to) {
#pragma omp simd
    for (int64_t i = from; i < to; i++) {
      float x = g[i], d = dout[i];
      float s = sigmoid(2.0f * kGeluC * (x + kGeluA * x * x * x));
      float slope = s + x * s * (1.0f - s) * 2.0f * kGeluC * (1.0f + 3.0f * kGeluA * x * x);
      du[i] = d * x * s;
      dg[i] = d * u[i] * slope;
    }
  });
}

// out[t] = table[ids[t]] (ids already checked against the table's rows)
inline void embeddingForwardF32(const int32_t* ids, const float* w, float* out, int64_t N, int64_t C) {
  splitRange(N, kParallelMin / C, [=](int64_t from, int64_t to) {
    for (int64_t t = from; t < to; t++) std::memcpy(out + t * C, w + ids[t] * C, C * 4);
  });
}
inline void embeddingForwardBf16(const int32_t* ids, const uint16_t* w, float* out, int64_t N, int64_t C) {
  splitRange(N, kParallelMin / C, [=](int64_t from, int64_t to) {
    for (int64_t t = from; t < to; t++)
#pragma omp simd
      for (int64_t c = 0; c < C; c++) out[t * C + c] = bf16_to_f32(w[ids[t] * C + c]);
  });
}

// dtable[ids[t]] += dout[t], except the padding row. Threads split the columns so that no two threads ever add
// into the same element.
inline void embeddingBackward(const int32_t* ids, const float* dout, float* dw, int64_t N, int64_t C, int64_t pad) {
#pragma omp parallel if (N * C > kParallelMin)
  {
    int nt = omp_get_num_threads(), me = omp_get_thread_num();
    int64_t c0 = C * me / nt, c1 = C * (me + 1) / nt;
    for (int64_t t = 0; t < N; t++) {
      if (ids[t] == pad) continue;
      float* row = dw + ids[t] * C;
      const float* g = dout + t * C;
#pragma omp simd
      for (int64_t c = c0; c < c1; c++) row[c] += g[c];
    }
  }
}

// Counter-based random bits: the same (seed, index) always gives the same value, on any thread, so the
// dropout mask never needs to be stored; the backward pass regenerates it.
inline uint32_t hash32(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + i;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
}

// out[i] ~ N(0, std²) from the counter hash: Box-Muller on the hashes of pair j = i / 2 gives r·cos to the even
// element and r·sin to the odd one. The same values for any thread count, and any stretch of a tensor can be
// filled alone (offset: the index of out[0], even)
inline void fillNormal(float* out, int64_t n, uint64_t seed, uint64_t offset, float std) {
  constexpr float kTwoPi = 6.2831853f, kScale = 1.0f / 4294967296.0f;
  const int64_t pairs = (n + 1) / 2;
#pragma omp parallel for if (n > kParallelMin) schedule(static)
  for (int64_t j = 0; j < pairs; j++) {
    uint64_t k = offset + 2 * static_cast<uint64_t>(j);
    // u1 in (0, 1]: the f32 rounding of a hash near 2^32 lands on 1 (r = 0), never on 0
    float u1 = (static_cast<float>(hash32(seed, k)) + 1.0f) * kScale, u2 = static_cast<float>(hash32(seed, k + 1)) * kScale;
    float r = std::sqrt(-2.0f * std::log(std::min(u1, 1.0f))) * std, s, c;
    sincosf(kTwoPi * u2, &s, &c);
    out[2 * j] = r * c;
    if (2 * j + 1 < n) out[2 * j + 1] = r * s;
  }
}

// out = x / (1 - p) where kept, 0 where dropped (also the backward on dout)
inline void dropout(const float* x, float* out, int64_t n, double p, uint64_t seed) {
  const uint32_t threshold = static_cast<uint32_t>(p * 4294967296.0);
  const float keep = static_cast<float>(1.0 / (1.0 - p));
  splitRange(n, kParallelMin, [=](int64_t from, int64_t to) {
#pragma omp simd
    for (int64_t i = from; i < to; i++) out[i] = hash32(seed, static_cast<uint64_t>(i)) < threshold ? 0.0f : x[i] * keep;
  });
}

}  // namespace
}  // namespace lmf
