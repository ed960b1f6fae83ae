// The N-API side of the kernels: typed-array access and argument checks (the math lives in *_kernels.h and
// kernel_support.h, which know nothing of JavaScript).
#pragma once
#include <napi.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include "kernel_support.h"

namespace lmf {

// Throws a JavaScript TypeError and returns false when the condition does not hold.
inline bool require(const Napi::Env& env, bool ok, const std::string& what) {
  if (!ok) Napi::TypeError::New(env, "lmf_native: " + what).ThrowAsJavaScriptException();
  return ok;
}

// Raw data pointer of a typed array argument (any element type), or nullptr when the argument is null/undefined.
template <typename T>
inline T* ptr(const Napi::Value& v) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset());
}

inline size_t byteLength(const Napi::Value& v) { return v.As<Napi::TypedArray>().ByteLength(); }
inline int64_t i64(const Napi::Value& v) { return v.As<Napi::Number>().Int64Value(); }
inline double f64(const Napi::Value& v) { return v.As<Napi::Number>().DoubleValue(); }
inline bool boolean(const Napi::Value& v) { return v.As<Napi::Boolean>().Value(); }

// Element types shared with the JavaScript side (src/tensor/dtype.ts).
enum DType : int { F32 = 0, BF16 = 1 };

// C[M,N] (+)= op(A) · op(B) (+ bias) through oneDNN; throws dnnl::error (see matmul.cc).
void gemm(const void* A, const void* B, float* C, int64_t M, int64_t N, int64_t K, bool transA, bool transB,
          bool accumulate, const float* bias, DType dtype);

// Registration hooks, one per source file.
void registerMemory(Napi::Env env, Napi::Object exports);
void registerMatmul(Napi::Env env, Napi::Object exports);
void registerElementwise(Napi::Env env, Napi::Object exports);
void registerNormRope(Napi::Env env, Napi::Object exports);
void registerAttention(Napi::Env env, Napi::Object exports);
void registerCrossEntropy(Napi::Env env, Napi::Object exports);
void registerOptim(Napi::Env env, Napi::Object exports);

}  // namespace lmf
