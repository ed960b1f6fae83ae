// The N-API binding of cross_entropy_kernels.h: arguments checked against their sizes, then the kernel.
#include <string>
#include <dnnl.hpp>
#include "common.h"
#include "cross_entropy_kernels.h"

namespace lmf {

// lmHeadCrossEntropy(x[N,C], W[V,C], targets:Int32Array[N], weights|null, logp[N], dx|null, dW|null,
//                    N, C, V, dtype, chunk, softcap)   softcap 0 = none
static Napi::Value LmHeadCrossEntropy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "lmHeadCrossEntropy");
  int64_t N = a.size(7), C = a.size(8), V = a.size(9);
  DType dtype = static_cast<DType>(a.size(10));
  int64_t chunk = std::max<int64_t>(1, a.size(11));
  float softcap = static_cast<float>(a.number(12));
  a.check(N >= 0 && C > 0 && V > 0 && softcap >= 0.0f, "needs N >= 0, C > 0, V > 0 and softcap >= 0");
  const float* x = a.buffer<float>(0, N * C, "x");
  const void* W = dtype == BF16 ? static_cast<const void*>(a.buffer<uint16_t>(1, V * C, "W")) : a.buffer<float>(1, V * C, "W");
  const int32_t* targets = a.buffer<int32_t>(2, N, "targets");
  const float* weights = a.buffer<float>(3, N, "weights", true);
  float* logp = a.buffer<float>(4, N, "logp");
  float* dx = a.buffer<float>(5, N * C, "dx", true);
  float* dW = a.buffer<float>(6, V * C, "dW", true);
  if (!a.ok()) return env.Undefined();
  for (int64_t r = 0; r < N; r++)
    if (!require(env, targets[r] < V, "cross-entropy: target id " + std::to_string(targets[r]) +
                                          " is outside the vocabulary of " + std::to_string(V)))
      return env.Undefined();
  try {
    lmHeadCrossEntropy(x, W, targets, weights, logp, dx, dW, N, C, V, dtype, chunk, softcap);
  } catch (const dnnl::error& e) {
    Napi::Error::New(env, std::string("oneDNN matmul failed: ") + e.what()).ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

void registerCrossEntropy(Napi::Env env, Napi::Object exports) {
  exports.Set("lmHeadCrossEntropy", Napi::Function::New(env, LmHeadCrossEntropy));
}

}  // namespace lmf
