// Element-wise kernels: dtype conversion, residual adds, SwiGLU, embedding gather and scatter-add.
#include <omp.h>
#include <vector>
#include "common.h"
#include "vecmath.h"

namespace lmf {

// Loops shorter than this run on one thread: waking the pool costs more than it saves.
static constexpr int64_t kParallelMin = 1 << 15;

static Napi::Value ToBf16(const Napi::CallbackInfo& info) {
  const float* src = ptr<float>(info[0]);
  uint16_t* dst = ptr<uint16_t>(info[1]);
  int64_t n = i64(info[2]);
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; i++) dst[i] = f32_to_bf16(src[i]);
  return info.Env().Undefined();
}

static Napi::Value ToF32(const Napi::CallbackInfo& info) {
  const uint16_t* src = ptr<uint16_t>(info[0]);
  float* dst = ptr<float>(info[1]);
  int64_t n = i64(info[2]);
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(src[i]);
  return info.Env().Undefined();
}

// countNonFinite(x, n, dtype): how many of x[0..n) are NaN or infinite (exponent bits all ones), f32 or bf16.
// A load-time check of every weight: one pass over memory that was just read from disk.
static Napi::Value CountNonFinite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t n = i64(info[1]);
  DType dtype = static_cast<DType>(i64(info[2]));
  size_t el = dtype == BF16 ? 2 : 4;
  if (!require(env, n >= 0 && byteLength(info[0]) >= static_cast<size_t>(n) * el, "countNonFinite: x is smaller than n"))
    return env.Undefined();
  int64_t bad = 0;
  if (dtype == BF16) {
    const uint16_t* x = ptr<uint16_t>(info[0]);
#pragma omp parallel for simd if (n > kParallelMin) schedule(static) reduction(+ : bad)
    for (int64_t i = 0; i < n; i++) bad += (x[i] & 0x7f80u) == 0x7f80u;
  } else {
    const uint32_t* x = ptr<uint32_t>(info[0]);
#pragma omp parallel for simd if (n > kParallelMin) schedule(static) reduction(+ : bad)
    for (int64_t i = 0; i < n; i++) bad += (x[i] & 0x7f800000u) == 0x7f800000u;
  }
  return Napi::Number::New(env, static_cast<double>(bad));
}

// axpby(x, y, out, n, a, b): out = a*x + b*y  (out may alias x or y; y may be null, meaning out = a*x)
static Napi::Value Axpby(const Napi::CallbackInfo& info) {
  const float* x = ptr<float>(info[0]);
  const float* y = ptr<float>(info[1]);
  float* out = ptr<float>(info[2]);
  int64_t n = i64(info[3]);
  float a = static_cast<float>(f64(info[4])), b = static_cast<float>(f64(info[5]));
  if (y) {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = a * x[i] + b * y[i];
  } else {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = a * x[i];
  }
  return info.Env().Undefined();
}

static Napi::Value Fill(const Napi::CallbackInfo& info) {
  float* x = ptr<float>(info[0]);
  int64_t n = i64(info[1]);
  float v = static_cast<float>(f64(info[2]));
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; i++) x[i] = v;
  return info.Env().Undefined();
}

#pragma omp declare simd notinbranch
static inline float sigmoid(float g) { return 1.0f / (1.0f + exp_approx(-g)); }

// swigluForward(gate, up, out, n): out = silu(gate) * up
static Napi::Value SwigluForward(const Napi::CallbackInfo& info) {
  const float* g = ptr<float>(info[0]);
  const float* u = ptr<float>(info[1]);
  float* out = ptr<float>(info[2]);
  int64_t n = i64(info[3]);
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; i++) out[i] = g[i] * sigmoid(g[i]) * u[i];
  return info.Env().Undefined();
}

// swigluBackward(gate, up, dout, dgate, dup, n)
static Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  const float* g = ptr<float>(info[0]);
  const float* u = ptr<float>(info[1]);
  const float* dout = ptr<float>(info[2]);
  float* dg = ptr<float>(info[3]);
  float* du = ptr<float>(info[4]);
  int64_t n = i64(info[5]);
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float s = sigmoid(g[i]);
    float d = dout[i];
    du[i] = d * g[i] * s;
    dg[i] = d * u[i] * s * (1.0f + g[i] * (1.0f - s));
  }
  return info.Env().Undefined();
}

// embeddingForward(ids:Int32Array, table, out, N, C, dtype): out[t] = table[ids[t]]
static Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int32_t* ids = ptr<int32_t>(info[0]);
  float* out = ptr<float>(info[2]);
  int64_t N = i64(info[3]), C = i64(info[4]);
  DType dtype = static_cast<DType>(i64(info[5]));
  int64_t rows = static_cast<int64_t>(byteLength(info[1]) / (dtype == BF16 ? 2 : 4)) / C;
  for (int64_t t = 0; t < N; t++)
    if (!require(env, ids[t] >= 0 && ids[t] < rows, "embedding: token id " + std::to_string(ids[t]) +
                                                        " is outside the vocabulary of " + std::to_string(rows)))
      return env.Undefined();
  if (dtype == BF16) {
    const uint16_t* w = ptr<uint16_t>(info[1]);
#pragma omp parallel for if (N * C > kParallelMin) schedule(static)
    for (int64_t t = 0; t < N; t++)
      for (int64_t c = 0; c < C; c++) out[t * C + c] = bf16_to_f32(w[ids[t] * C + c]);
  } else {
    const float* w = ptr<float>(info[1]);
#pragma omp parallel for if (N * C > kParallelMin) schedule(static)
    for (int64_t t = 0; t < N; t++) std::memcpy(out + t * C, w + ids[t] * C, C * 4);
  }
  return env.Undefined();
}

// embeddingBackward(ids, dout, dtable, N, C, paddingIdx): dtable[ids[t]] += dout[t], except the padding row.
// Threads split the columns so that no two threads ever add into the same element.
static Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  const int32_t* ids = ptr<int32_t>(info[0]);
  const float* dout = ptr<float>(info[1]);
  float* dw = ptr<float>(info[2]);
  int64_t N = i64(info[3]), C = i64(info[4]), pad = i64(info[5]);
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
  return info.Env().Undefined();
}

// Counter-based random bits: the same (seed, index) always gives the same value, on any thread, so the
// dropout mask never needs to be stored; the backward pass regenerates it.
static inline uint32_t hash32(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + i;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
}

// dropout(x, out, n, p, seed): out = x / (1 - p) where kept, 0 where dropped (also the backward on dout).
static Napi::Value Dropout(const Napi::CallbackInfo& info) {
  const float* x = ptr<float>(info[0]);
  float* out = ptr<float>(info[1]);
  int64_t n = i64(info[2]);
  double p = f64(info[3]);
  uint64_t seed = static_cast<uint64_t>(i64(info[4]));
  const uint32_t threshold = static_cast<uint32_t>(p * 4294967296.0);
  const float keep = static_cast<float>(1.0 / (1.0 - p));
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; i++) out[i] = hash32(seed, static_cast<uint64_t>(i)) < threshold ? 0.0f : x[i] * keep;
  return info.Env().Undefined();
}

void registerElementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("toBf16", Napi::Function::New(env, ToBf16));
  exports.Set("toF32", Napi::Function::New(env, ToF32));
  exports.Set("countNonFinite", Napi::Function::New(env, CountNonFinite));
  exports.Set("axpby", Napi::Function::New(env, Axpby));
  exports.Set("fill", Napi::Function::New(env, Fill));
  exports.Set("dropout", Napi::Function::New(env, Dropout));
  exports.Set("swigluForward", Napi::Function::New(env, SwigluForward));
  exports.Set("swigluBackward", Napi::Function::New(env, SwigluBackward));
  exports.Set("embeddingForward", Napi::Function::New(env, EmbeddingForward));
  exports.Set("embeddingBackward", Napi::Function::New(env, EmbeddingBackward));
}

}  // namespace lmf
