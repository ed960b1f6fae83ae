// RMSNorm (forward and backward) and rotary position embeddings (rotate-half convention, as Hugging Face).
#include <omp.h>
#include <vector>
#include "common.h"

namespace lmf {

// rmsnormForward(x, w, out, rstd, rows, C, eps): out = w * x * rstd, rstd = 1/sqrt(mean(x^2) + eps)
static Napi::Value RmsnormForward(const Napi::CallbackInfo& info) {
  const float* x = ptr<float>(info[0]);
  const float* w = ptr<float>(info[1]);
  float* out = ptr<float>(info[2]);
  float* rstd = ptr<float>(info[3]);
  int64_t rows = i64(info[4]), C = i64(info[5]);
  float eps = static_cast<float>(f64(info[6]));
#pragma omp parallel for if (rows * C > 16384) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * C;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int64_t c = 0; c < C; c++) ss += xr[c] * xr[c];
    float s = 1.0f / std::sqrt(ss / static_cast<float>(C) + eps);
    if (rstd) rstd[r] = s;
    float* o = out + r * C;
#pragma omp simd
    for (int64_t c = 0; c < C; c++) o[c] = w[c] * (xr[c] * s);
  }
  return info.Env().Undefined();
}

// rmsnormBackward(dout, x, w, rstd, dx, dw|null, rows, C): dx = rstd*(w*dout - xhat*mean(w*dout*xhat));
// dw += sum over rows of dout*xhat (each thread sums its rows, then the partial sums are added in order).
static Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  const float* dout = ptr<float>(info[0]);
  const float* x = ptr<float>(info[1]);
  const float* w = ptr<float>(info[2]);
  const float* rstd = ptr<float>(info[3]);
  float* dx = ptr<float>(info[4]);
  float* dw = ptr<float>(info[5]);
  int64_t rows = i64(info[6]), C = i64(info[7]);
  int nt = rows * C > 16384 ? omp_get_max_threads() : 1;
  std::vector<float> partial(dw ? static_cast<size_t>(nt * C) : 0, 0.0f);
#pragma omp parallel num_threads(nt)
  {
    int me = omp_get_thread_num(), n = omp_get_num_threads();
    float* pw = dw ? partial.data() + me * C : nullptr;
    for (int64_t r = rows * me / n; r < rows * (me + 1) / n; r++) {
      const float* xr = x + r * C;
      const float* g = dout + r * C;
      float s = rstd[r];
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t c = 0; c < C; c++) dot += w[c] * g[c] * xr[c] * s;
      float mean = dot / static_cast<float>(C);
      float* d = dx + r * C;
#pragma omp simd
      for (int64_t c = 0; c < C; c++) d[c] = s * (w[c] * g[c] - xr[c] * s * mean);
      if (pw) {
#pragma omp simd
        for (int64_t c = 0; c < C; c++) pw[c] += g[c] * xr[c] * s;
      }
    }
  }
  if (dw)
    for (int t = 0; t < nt; t++)
      for (int64_t c = 0; c < C; c++) dw[c] += partial[t * C + c];
  return info.Env().Undefined();
}

// ropeTable(positions:Int32Array, invFreq, cos, sin, tokens, half): cos/sin [tokens, half] of
// position * inv_freq. The angle is computed in f32 (as Hugging Face) and its cosine and sine are rounded
// from double precision. Made once per batch and shared by every layer.
static Napi::Value RopeTable(const Napi::CallbackInfo& info) {
  const int32_t* pos = ptr<int32_t>(info[0]);
  const float* invFreq = ptr<float>(info[1]);
  float* cs = ptr<float>(info[2]);
  float* sn = ptr<float>(info[3]);
  int64_t N = i64(info[4]), half = i64(info[5]);
#pragma omp parallel for if (N * half > 16384) schedule(static)
  for (int64_t t = 0; t < N; t++)
    for (int64_t j = 0; j < half; j++) {
      double angle = static_cast<double>(static_cast<float>(pos[t]) * invFreq[j]);
      cs[t * half + j] = static_cast<float>(std::cos(angle));
      sn[t * half + j] = static_cast<float>(std::sin(angle));
    }
  return info.Env().Undefined();
}

// rope(x, cos, sin, tokens, heads, headDim, inverse): rotates x [tokens, heads, headDim] in place
// (rotate-half convention); inverse rotates by -angle, which is the backward pass.
static Napi::Value Rope(const Napi::CallbackInfo& info) {
  float* x = ptr<float>(info[0]);
  const float* cs = ptr<float>(info[1]);
  const float* sn = ptr<float>(info[2]);
  int64_t N = i64(info[3]), H = i64(info[4]), D = i64(info[5]);
  const float sign = boolean(info[6]) ? -1.0f : 1.0f;
  int64_t half = D / 2;
#pragma omp parallel for if (N * H * D > 16384) schedule(static)
  for (int64_t t = 0; t < N; t++) {
    const float* c = cs + t * half;
    const float* s = sn + t * half;
    for (int64_t h = 0; h < H; h++) {
      float* v = x + (t * H + h) * D;
#pragma omp simd
      for (int64_t j = 0; j < half; j++) {
        float a = v[j], b = v[j + half], sj = sign * s[j];
        v[j] = a * c[j] - b * sj;
        v[j + half] = b * c[j] + a * sj;
      }
    }
  }
  return info.Env().Undefined();
}

void registerNormRope(Napi::Env env, Napi::Object exports) {
  exports.Set("rmsnormForward", Napi::Function::New(env, RmsnormForward));
  exports.Set("rmsnormBackward", Napi::Function::New(env, RmsnormBackward));
  exports.Set("ropeTable", Napi::Function::New(env, RopeTable));
  exports.Set("rope", Napi::Function::New(env, Rope));
}

}  // namespace lmf
