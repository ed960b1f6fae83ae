// The N-API bindings of norm_rope_kernels.h: arguments checked against their sizes, then the kernel.
#include "common.h"
#include "norm_rope_kernels.h"

namespace lmf {

// rmsnormForward(x, w, out, rstd|null, rows, C, eps)
static Napi::Value RmsnormForward(const Napi::CallbackInfo& info) {
  Args a(info, "rmsnormForward");
  int64_t rows = a.size(4), C = a.size(5);
  a.check(rows >= 0 && C > 0, "needs rows >= 0 and C > 0");
  const float* x = a.buffer<float>(0, rows * C, "x");
  const float* w = a.buffer<float>(1, C, "w");
  float* out = a.buffer<float>(2, rows * C, "out");
  float* rstd = a.buffer<float>(3, rows, "rstd", true);
  float eps = static_cast<float>(a.number(6));
  if (a.ok()) rmsnormForward(x, w, out, rstd, rows, C, eps);
  return info.Env().Undefined();
}

// rmsnormBackward(dout, x, w, rstd, dx, dw|null, rows, C)
static Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  Args a(info, "rmsnormBackward");
  int64_t rows = a.size(6), C = a.size(7);
  a.check(rows >= 0 && C > 0, "needs rows >= 0 and C > 0");
  const float* dout = a.buffer<float>(0, rows * C, "dout");
  const float* x = a.buffer<float>(1, rows * C, "x");
  const float* w = a.buffer<float>(2, C, "w");
  const float* rstd = a.buffer<float>(3, rows, "rstd");
  float* dx = a.buffer<float>(4, rows * C, "dx");
  float* dw = a.buffer<float>(5, C, "dw", true);
  if (a.ok()) rmsnormBackward(dout, x, w, rstd, dx, dw, rows, C);
  return info.Env().Undefined();
}

// ropeTable(positions, invFreq, cos, sin, tokens, half)
static Napi::Value RopeTable(const Napi::CallbackInfo& info) {
  Args a(info, "ropeTable");
  int64_t N = a.size(4), half = a.size(5);
  a.check(N >= 0 && half >= 0, "needs tokens >= 0 and half >= 0");
  const int32_t* pos = a.buffer<int32_t>(0, N, "positions");
  const float* invFreq = a.buffer<float>(1, half, "invFreq");
  float* cs = a.buffer<float>(2, N * half, "cos");
  float* sn = a.buffer<float>(3, N * half, "sin");
  if (a.ok()) ropeTable(pos, invFreq, cs, sn, N, half);
  return info.Env().Undefined();
}

// rope(x, cos, sin, tokens, heads, headDim, rotaryDim, inverse)
static Napi::Value Rope(const Napi::CallbackInfo& info) {
  Args a(info, "rope");
  int64_t N = a.size(3), H = a.size(4), D = a.size(5), R = a.size(6);
  a.check(N >= 0 && H > 0 && R > 0 && R % 2 == 0 && R <= D,
          "needs tokens >= 0, heads > 0 and an even rotaryDim no larger than headDim");
  float* x = a.buffer<float>(0, N * H * D, "x");
  const float* cs = a.buffer<float>(1, N * (R / 2), "cos");
  const float* sn = a.buffer<float>(2, N * (R / 2), "sin");
  if (a.ok()) rope(x, cs, sn, N, H, D, R, boolean(info[7]));
  return info.Env().Undefined();
}

void registerNormRope(Napi::Env env, Napi::Object exports) {
  exports.Set("rmsnormForward", Napi::Function::New(env, RmsnormForward));
  exports.Set("rmsnormBackward", Napi::Function::New(env, RmsnormBackward));
  exports.Set("ropeTable", Napi::Function::New(env, RopeTable));
  exports.Set("rope", Napi::Function::New(env, Rope));
}

}  // namespace lmf
