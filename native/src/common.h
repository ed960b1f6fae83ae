// The N-API side of the kernels: typed-array access and argument checks (the math lives in *_kernels.h and
// kernel_support.h, which know nothing of JavaScript).
#pragma once
#include <napi.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include "kernel_support.h"

namespace lmf {

// Throws a JavaScript TypeError and returns false when the condition does not hold.
inline bool require(const Napi::Env& env, bool ok, const std::string& what) {
  if (!ok) Napi::TypeError::New(env, "lmf_native: " + what).ThrowAsJavaScriptException();
  return ok;
}

// A typed array argument's first element and byte length, in one N-API call (its data pointer already includes
// the view's byte offset); {nullptr, 0} when the value is not a typed array. Bindings run hundreds of times per
// decoded token: the wrapper's separate IsTypedArray, ArrayBuffer, Data and ByteOffset calls cost ~0.35 µs a buffer.
struct TypedView {
  void* data = nullptr;
  size_t bytes = 0;
  bool ok = false;
};
inline TypedView typedView(const Napi::Value& v) {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(v.Env(), v, &type, &length, &data, nullptr, nullptr) != napi_ok) return {};
  size_t size = 1;
  switch (type) {
    case napi_int16_array: case napi_uint16_array: size = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: size = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: size = 8; break;
    default: break;
  }
  return {data, length * size, true};
}

// Raw data pointer of a typed array argument (any element type), or nullptr when it is not one (null/undefined).
template <typename T>
inline T* ptr(const Napi::Value& v) {
  return static_cast<T*>(typedView(v).data);
}

inline size_t byteLength(const Napi::Value& v) { return typedView(v).bytes; }

// A typed array of at least `count` elements of T; otherwise nullptr, with `problem` saying why when it is one (null
// and undefined are none when `optional`).
template <typename T>
T* sizedBuffer(const Napi::Value& v, int64_t count, bool optional, const char*& problem) {
  const TypedView view = typedView(v);
  if (!view.ok) {
    if (!v.IsNull() && !v.IsUndefined()) problem = "must be a typed array";
    else if (!optional) problem = "is missing";
    return nullptr;
  }
  if (count < 0 || view.bytes < static_cast<size_t>(count) * sizeof(T)) {
    problem = "is smaller than its sizes";
    return nullptr;
  }
  return static_cast<T*>(view.data);
}
inline int64_t i64(const Napi::Value& v) { return v.As<Napi::Number>().Int64Value(); }
inline double f64(const Napi::Value& v) { return v.As<Napi::Number>().DoubleValue(); }
inline bool boolean(const Napi::Value& v) { return v.As<Napi::Boolean>().Value(); }

// A binding's arguments, checked: each buffer must be a typed array of at least the elements the sizes imply.
// The first failure throws a JavaScript TypeError naming the kernel and the argument; `ok()` then tells the
// binding to return without calling its kernel, which never sees a buffer smaller than its sizes.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* kernel) : info_(info), kernel_(kernel) {}

  // A size or other number argument (0 after a failure).
  int64_t size(int i) {
    int64_t n = 0;
    if (napi_get_value_int64(info_.Env(), info_[i], &n) == napi_ok) return n;
    fail(i, "must be a number");
    return 0;
  }
  // A true/false argument (false after a failure).
  bool flag(int i) {
    bool b = false;
    if (napi_get_value_bool(info_.Env(), info_[i], &b) == napi_ok) return b;
    fail(i, "must be true or false");
    return false;
  }
  double number(int i) {
    double x = 0.0;
    if (napi_get_value_double(info_.Env(), info_[i], &x) == napi_ok) return x;
    fail(i, "must be a number");
    return 0.0;
  }

  // A buffer of `count` elements of T (null/undefined allowed when `optional`).
  template <typename T>
  T* buffer(int i, int64_t count, const char* name, bool optional = false) {
    const char* problem = nullptr;
    T* data = sizedBuffer<T>(info_[i], count, optional, problem);
    if (problem) fail(name, problem);
    return data;
  }

  // The product of sizes, or -1 (which no buffer holds) when one is negative or the product overflows.
  static int64_t product(std::initializer_list<int64_t> sizes) {
    int64_t p = 1;
    for (int64_t s : sizes)
      if (s < 0 || __builtin_mul_overflow(p, s, &p)) return -1;
    return p;
  }

  // A condition on the sizes; false fails with `what`.
  void check(bool cond, const char* what) {
    if (!cond) fail(nullptr, what);
  }

  bool ok() const { return !failed_; }

 private:
  void fail(int i, const char* what) { fail(("argument " + std::to_string(i)).c_str(), what); }
  void fail(const char* name, const char* what) {
    if (failed_) return;
    failed_ = true;
    std::string msg = std::string("lmf_native: ") + kernel_ + ": " + (name ? std::string(name) + " " : "") + what;
    Napi::TypeError::New(info_.Env(), msg).ThrowAsJavaScriptException();
  }

  const Napi::CallbackInfo& info_;
  const char* kernel_;
  bool failed_ = false;
};


// Whether oneDNN runs bf16 matmuls itself (bf16 dot products or AMX), or they are widened to f32 (matmul.cc).
bool onednnHasBf16();
// x86-64: the instruction set oneDNN generates code for (its effective ISA, named as in its cpu_isa).
const char* onednnIsaName();

// Registration hooks, one per source file.
void registerMemory(Napi::Env env, Napi::Object exports);
void registerMatmul(Napi::Env env, Napi::Object exports);
void registerElementwise(Napi::Env env, Napi::Object exports);
void registerNormRope(Napi::Env env, Napi::Object exports);
void registerAttention(Napi::Env env, Napi::Object exports);
void registerCrossEntropy(Napi::Env env, Napi::Object exports);
void registerOptim(Napi::Env env, Napi::Object exports);
void registerSampling(Napi::Env env, Napi::Object exports);
void registerQuant(Napi::Env env, Napi::Object exports);
void registerGgmlQuants(Napi::Env env, Napi::Object exports);
void registerLinearAttention(Napi::Env env, Napi::Object exports);
void registerDecodeStack(Napi::Env env, Napi::Object exports);

}  // namespace lmf
