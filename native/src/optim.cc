// Optimiser kernels over many tensors in one call: the squared gradient norm and the AdamW update.
#include <omp.h>
#include <cmath>
#include <vector>
#include "common.h"

namespace lmf {

namespace {
struct Span {
  int64_t tensor, begin, end;
};
// Splits every tensor into pieces of at most `piece` elements so that threads share the work evenly.
std::vector<Span> spans(const std::vector<int64_t>& sizes, int64_t piece) {
  std::vector<Span> out;
  for (int64_t t = 0; t < static_cast<int64_t>(sizes.size()); t++)
    for (int64_t b = 0; b < sizes[t]; b += piece) out.push_back({t, b, std::min(sizes[t], b + piece)});
  return out;
}
std::vector<float*> pointers(const Napi::Array& a) {
  std::vector<float*> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) out[i] = ptr<float>(a.Get(i));
  return out;
}
constexpr int64_t kPiece = 1 << 16;
}  // namespace

// sumSquares(arrays) -> sum of x^2 over every element of every array, accumulated in double.
static Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Napi::Array arrays = info[0].As<Napi::Array>();
  std::vector<float*> p = pointers(arrays);
  std::vector<int64_t> sizes(p.size());
  for (uint32_t i = 0; i < arrays.Length(); i++) sizes[i] = static_cast<int64_t>(byteLength(arrays.Get(i)) / 4);
  std::vector<Span> work = spans(sizes, kPiece);
  std::vector<double> partial(work.size());
#pragma omp parallel for schedule(static)
  for (size_t w = 0; w < work.size(); w++) {
    const float* x = p[work[w].tensor];
    double s = 0.0;
    for (int64_t i = work[w].begin; i < work[w].end; i++) s += static_cast<double>(x[i]) * x[i];
    partial[w] = s;
  }
  double total = 0.0;
  for (double s : partial) total += s;  // fixed order: the result does not depend on the thread count
  return Napi::Number::New(info.Env(), total);
}

// adamw(params, grads, m, v, lr:Float64Array, weightDecay:Float64Array, beta1, beta2, eps, step, gradScale)
// PyTorch's AdamW: decoupled weight decay p -= lr*wd*p, bias-corrected moments; gradients are multiplied
// by gradScale first (global-norm clipping).
static Napi::Value AdamW(const Napi::CallbackInfo& info) {
  Napi::Array params = info[0].As<Napi::Array>();
  std::vector<float*> p = pointers(params), g = pointers(info[1].As<Napi::Array>()),
                      m = pointers(info[2].As<Napi::Array>()), v = pointers(info[3].As<Napi::Array>());
  const double* lr = ptr<double>(info[4]);
  const double* wd = ptr<double>(info[5]);
  double b1 = f64(info[6]), b2 = f64(info[7]), eps = f64(info[8]);
  double step = f64(info[9]);
  float scale = static_cast<float>(f64(info[10]));
  std::vector<int64_t> sizes(p.size());
  for (uint32_t i = 0; i < params.Length(); i++) sizes[i] = static_cast<int64_t>(byteLength(params.Get(i)) / 4);
  std::vector<Span> work = spans(sizes, kPiece);
  const float bc1 = static_cast<float>(1.0 - std::pow(b1, step));
  const float bc2sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(b2, step)));
  const float fb1 = static_cast<float>(b1), fb2 = static_cast<float>(b2), feps = static_cast<float>(eps);
#pragma omp parallel for schedule(static)
  for (size_t w = 0; w < work.size(); w++) {
    int64_t t = work[w].tensor;
    float* pp = p[t];
    const float* gg = g[t];
    float* mm = m[t];
    float* vv = v[t];
    const float decay = static_cast<float>(1.0 - lr[t] * wd[t]);
    const float stepSize = static_cast<float>(lr[t]) / bc1;
#pragma omp simd
    for (int64_t i = work[w].begin; i < work[w].end; i++) {
      float gi = gg[i] * scale;
      mm[i] = fb1 * mm[i] + (1.0f - fb1) * gi;
      vv[i] = fb2 * vv[i] + (1.0f - fb2) * gi * gi;
      float denom = std::sqrt(vv[i]) / bc2sqrt + feps;
      pp[i] = pp[i] * decay - stepSize * mm[i] / denom;
    }
  }
  return info.Env().Undefined();
}

void registerOptim(Napi::Env env, Napi::Object exports) {
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares));
  exports.Set("adamw", Napi::Function::New(env, AdamW));
}

}  // namespace lmf
