// Entry point of the native addon: registers every kernel group and exposes thread settings.
#include <omp.h>
#include <dnnl.hpp>
#include <cstdlib>
#include "common.h"
#include "kernels.h"

namespace lmf {

static Napi::Value Threads(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsNumber()) omp_set_num_threads(static_cast<int>(i64(info[0])));
  return Napi::Number::New(info.Env(), omp_get_max_threads());
}

static Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  const dnnl_version_t* v = dnnl_version();
  o.Set("onednn", std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch));
  o.Set("threads", omp_get_max_threads());
  o.Set("isa", std::string(kernels().name));
  o.Set("bf16Matmul", std::string(onednnHasBf16() ? "onednn" : "widened"));
#if defined(__x86_64__)
  o.Set("onednnIsa", std::string(onednnIsaName()));
#endif
  return o;
}

// The kernel path's measured arithmetic peak in GFLOP/s on every OpenMP thread: f32 FMAs, or (true) bf16 dot
// products, 0 when the path has none. Runs for about half a second.
static Napi::Value PeakGflops(const Napi::CallbackInfo& info) {
  bool bf16 = info.Length() > 0 && info[0].ToBoolean().Value();
  return Napi::Number::New(info.Env(), kernels().peakGflops(bf16));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  std::string refused = selectIsa(std::getenv("LMF_ISA"));
  if (!refused.empty()) {
    Napi::Error::New(env, "lmf_native: " + refused).ThrowAsJavaScriptException();
    return exports;
  }
#if defined(__x86_64__)
  // a forced path holds for oneDNN's own code generation too, so that each path can be measured whole; the top
  // path leaves oneDNN uncapped, so that it keeps AMX where the CPU has it
  if (std::getenv("LMF_ISA") && *std::getenv("LMF_ISA")) {
    static const dnnl::cpu_isa onednn[] = {dnnl::cpu_isa::avx2, dnnl::cpu_isa::avx512_core, dnnl::cpu_isa::all};
    try {
      dnnl::set_max_cpu_isa(onednn[kernels().level]);
    } catch (const dnnl::error& e) {
      Napi::Error::New(env, std::string("lmf_native: LMF_ISA could not cap oneDNN: ") + e.what()).ThrowAsJavaScriptException();
      return exports;
    }
  }
#endif
  exports.Set("threads", Napi::Function::New(env, Threads));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("peakGflops", Napi::Function::New(env, PeakGflops));
  registerMemory(env, exports);
  registerMatmul(env, exports);
  registerElementwise(env, exports);
  registerNormRope(env, exports);
  registerAttention(env, exports);
  registerCrossEntropy(env, exports);
  registerOptim(env, exports);
  registerSampling(env, exports);
  registerQuant(env, exports);
  registerGgmlQuants(env, exports);
  registerLinearAttention(env, exports);
  registerDecodeStack(env, exports);
  return exports;
}

}  // namespace lmf

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return lmf::Init(env, exports); }
NODE_API_MODULE(lmf_native, InitAddon)
