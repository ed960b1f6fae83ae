// The N-API bindings of elementwise_kernels.h: arguments checked against their sizes, then the kernel.
#include <string>
#include "common.h"
#include "elementwise_kernels.h"

namespace lmf {

// toBf16(src, dst, n)
static Napi::Value ToBf16(const Napi::CallbackInfo& info) {
  Args a(info, "toBf16");
  int64_t n = a.size(2);
  a.check(n >= 0, "needs n >= 0");
  const float* src = a.buffer<float>(0, n, "src");
  uint16_t* dst = a.buffer<uint16_t>(1, n, "dst");
  if (a.ok()) toBf16(src, dst, n);
  return info.Env().Undefined();
}

// toF32(src, dst, n)
static Napi::Value ToF32(const Napi::CallbackInfo& info) {
  Args a(info, "toF32");
  int64_t n = a.size(2);
  a.check(n >= 0, "needs n >= 0");
  const uint16_t* src = a.buffer<uint16_t>(0, n, "src");
  float* dst = a.buffer<float>(1, n, "dst");
  if (a.ok()) toF32(src, dst, n);
  return info.Env().Undefined();
}

// countNonFinite(x, n, dtype): how many of x[0..n) are NaN or infinite, f32 or bf16
static Napi::Value CountNonFinite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "countNonFinite");
  int64_t n = a.size(1);
  bool bf16 = static_cast<DType>(a.size(2)) == BF16;
  a.check(n >= 0, "needs n >= 0");
  const void* x = bf16 ? static_cast<const void*>(a.buffer<uint16_t>(0, n, "x")) : a.buffer<uint32_t>(0, n, "x");
  if (!a.ok()) return env.Undefined();
  int64_t bad = bf16 ? countNonFiniteBf16(static_cast<const uint16_t*>(x), n) : countNonFiniteF32(static_cast<const uint32_t*>(x), n);
  return Napi::Number::New(env, static_cast<double>(bad));
}

// axpby(x, y|null, out, n, a, b): out = a*x + b*y
static Napi::Value Axpby(const Napi::CallbackInfo& info) {
  Args a(info, "axpby");
  int64_t n = a.size(3);
  a.check(n >= 0, "needs n >= 0");
  const float* x = a.buffer<float>(0, n, "x");
  const float* y = a.buffer<float>(1, n, "y", true);
  float* out = a.buffer<float>(2, n, "out");
  float alpha = static_cast<float>(a.number(4)), beta = static_cast<float>(a.number(5));
  if (a.ok()) axpby(x, y, out, n, alpha, beta);
  return info.Env().Undefined();
}

// fill(x, n, value)
static Napi::Value Fill(const Napi::CallbackInfo& info) {
  Args a(info, "fill");
  int64_t n = a.size(1);
  a.check(n >= 0, "needs n >= 0");
  float* x = a.buffer<float>(0, n, "x");
  float v = static_cast<float>(a.number(2));
  if (a.ok()) fill(x, n, v);
  return info.Env().Undefined();
}

// The gated activations (SwiGLU, GeGLU, the sigmoid gate) share one binding shape:
// <name>Forward(gate, up, out, n) and <name>Backward(gate, up, dout, dgate, dup, n).
using GatedForward = void (*)(const float*, const float*, float*, int64_t);
using GatedBackward = void (*)(const float*, const float*, const float*, float*, float*, int64_t);

static Napi::Value gatedForward(const Napi::CallbackInfo& info, const char* name, GatedForward kernel) {
  Args a(info, name);
  int64_t n = a.size(3);
  a.check(n >= 0, "needs n >= 0");
  const float* g = a.buffer<float>(0, n, "gate");
  const float* u = a.buffer<float>(1, n, "up");
  float* out = a.buffer<float>(2, n, "out");
  if (a.ok()) kernel(g, u, out, n);
  return info.Env().Undefined();
}

static Napi::Value gatedBackward(const Napi::CallbackInfo& info, const char* name, GatedBackward kernel) {
  Args a(info, name);
  int64_t n = a.size(5);
  a.check(n >= 0, "needs n >= 0");
  const float* g = a.buffer<float>(0, n, "gate");
  const float* u = a.buffer<float>(1, n, "up");
  const float* dout = a.buffer<float>(2, n, "dout");
  float* dg = a.buffer<float>(3, n, "dgate");
  float* du = a.buffer<float>(4, n, "dup");
  if (a.ok()) kernel(g, u, dout, dg, du, n);
  return info.Env().Undefined();
}

// embeddingForward(ids, table, out, N, C, dtype): every id is checked against the table's rows first
static Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "embeddingForward");
  int64_t N = a.size(3), C = a.size(4);
  bool bf16 = static_cast<DType>(a.size(5)) == BF16;
  a.check(N >= 0 && C > 0, "needs N >= 0 and C > 0");
  const int32_t* ids = a.buffer<int32_t>(0, N, "ids");
  float* out = a.buffer<float>(2, N * C, "out");
  if (!a.ok() || !require(env, info[1].IsTypedArray(), "embedding: the table must be a typed array")) return env.Undefined();
  int64_t rows = static_cast<int64_t>(byteLength(info[1]) / (bf16 ? 2 : 4)) / C;
  for (int64_t t = 0; t < N; t++)
    if (!require(env, ids[t] >= 0 && ids[t] < rows, "embedding: token id " + std::to_string(ids[t]) +
                                                        " is outside the vocabulary of " + std::to_string(rows)))
      return env.Undefined();
  if (bf16) embeddingForwardBf16(ids, ptr<uint16_t>(info[1]), out, N, C);
  else embeddingForwardF32(ids, ptr<float>(info[1]), out, N, C);
  return env.Undefined();
}

// embeddingBackward(ids, dout, dtable, N, C, paddingIdx)
static Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "embeddingBackward");
  int64_t N = a.size(3), C = a.size(4), pad = a.size(5);
  a.check(N >= 0 && C > 0, "needs N >= 0 and C > 0");
  const int32_t* ids = a.buffer<int32_t>(0, N, "ids");
  const float* dout = a.buffer<float>(1, N * C, "dout");
  if (!a.ok() || !require(env, info[2].IsTypedArray(), "embedding: dtable must be a typed array")) return env.Undefined();
  int64_t rows = static_cast<int64_t>(byteLength(info[2]) / 4) / C;
  for (int64_t t = 0; t < N; t++)
    if (!require(env, ids[t] == pad || (ids[t] >= 0 && ids[t] < rows), "embedding: token id " + std::to_string(ids[t]) +
                                                                         " is outside the vocabulary of " + std::to_string(rows)))
      return env.Undefined();
  embeddingBackward(ids, dout, ptr<float>(info[2]), N, C, pad);
  return env.Undefined();
}

// fillNormal(out, n, seed, offset, std)
static Napi::Value FillNormal(const Napi::CallbackInfo& info) {
  Args a(info, "fillNormal");
  int64_t n = a.size(1), offset = a.size(3);
  double std = a.number(4);
  a.check(n >= 0 && offset >= 0 && offset % 2 == 0 && std >= 0, "needs n, std >= 0 and an even offset");
  float* out = a.buffer<float>(0, n, "out");
  uint64_t seed = static_cast<uint64_t>(a.size(2));
  if (a.ok()) fillNormal(out, n, seed, static_cast<uint64_t>(offset), static_cast<float>(std));
  return info.Env().Undefined();
}

// dropout(x, out, n, p, seed)
static Napi::Value Dropout(const Napi::CallbackInfo& info) {
  Args a(info, "dropout");
  int64_t n = a.size(2);
  double p = a.number(3);
  a.check(n >= 0 && p >= 0 && p < 1, "needs n >= 0 and 0 <= p < 1");
  const float* x = a.buffer<float>(0, n, "x");
  float* out = a.buffer<float>(1, n, "out");
  uint64_t seed = static_cast<uint64_t>(a.size(4));
  if (a.ok()) dropout(x, out, n, p, seed);
  return info.Env().Undefined();
}

void registerElementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("toBf16", Napi::Function::New(env, ToBf16));
  exports.Set("toF32", Napi::Function::New(env, ToF32));
  exports.Set("countNonFinite", Napi::Function::New(env, CountNonFinite));
  exports.Set("axpby", Napi::Function::New(env, Axpby));
  exports.Set("fill", Napi::Function::New(env, Fill));
  exports.Set("dropout", Napi::Function::New(env, Dropout));
  exports.Set("fillNormal", Napi::Function::New(env, FillNormal));
  exports.Set("swigluForward", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
                 return gatedForward(i, "swigluForward", swigluForward);
               }));
  exports.Set("swigluBackward", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
                 return gatedBackward(i, "swigluBackward", swigluBackward);
               }));
  exports.Set("sigmoidGateForward", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
                 return gatedForward(i, "sigmoidGateForward", sigmoidGateForward);
               }));
  exports.Set("sigmoidGateBackward", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
                 return gatedBackward(i, "sigmoidGateBackward", sigmoidGateBackward);
               }));
  exports.Set("gegluForward", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
                 return gatedForward(i, "gegluForward", gegluForward);
               }));
  exports.Set("gegluBackward", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
                 return gatedBackward(i, "gegluBackward", gegluBackward);
               }));
  exports.Set("embeddingForward", Napi::Function::New(env, EmbeddingForward));
  exports.Set("embeddingBackward", Napi::Function::New(env, EmbeddingBackward));
}

}  // namespace lmf
