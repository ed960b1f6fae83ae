// Shared helpers for the native kernels: typed-array access, bf16 conversion, argument checks.
// Kernels take raw pointers and sizes; the JavaScript side owns shapes and checks them before calling.
#pragma once
#include <napi.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <xmmintrin.h>

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

// bf16 is the upper half of an f32; conversion rounds to nearest even and keeps NaN a NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Flushes denormal inputs and results to zero on this thread while in scope, then restores the mode.
// Softmax tails (exp of very negative scores) multiplied by small values produce denormals, and every
// floating-point operation on a denormal takes a microcode assist: the attention backward ran 2x slower.
// Scoped, because JavaScript's own arithmetic on this thread must keep IEEE semantics.
class FlushDenormals {
 public:
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }  // FTZ | DAZ
  ~FlushDenormals() { _mm_setcsr(saved_); }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned int saved_;
};

// Scratch memory that lives between calls, one buffer per slot, grown but never shrunk. Fresh buffers of
// a megabyte or more come from mmap and cost a page fault per 4 KiB on first touch, which once took more
// time than the attention arithmetic itself. Not zeroed. Kernels run one at a time (from the JavaScript
// thread), so a slot is never used by two calls at once; threads inside a kernel use distinct slots.
float* scratch(int slot, size_t floats);

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
