// The N-API binding of sampling_kernels.h: arguments checked, then the kernel.
#include "common.h"
#include "sampling_kernels.h"

namespace lmf {

// The row of logits (argument 0) and its length V (argument 1) that both bindings take first.
static const float* logitsArg(Args& a, int64_t& V) {
  V = a.size(1);
  a.check(V > 0, "needs V > 0");
  return a.buffer<float>(0, V, "logits");
}

// sampleToken(logits, V, seen:Int32Array|null, penalty, temperature, topK, topP, u) -> token id
static Napi::Value SampleToken(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "sampleToken");
  int64_t V;
  const float* logits = logitsArg(a, V);
  int64_t nSeen = info[2].IsTypedArray() ? static_cast<int64_t>(byteLength(info[2]) / 4) : 0;
  const int32_t* seen = a.buffer<int32_t>(2, nSeen, "seen", true);
  SamplingSettings s{static_cast<float>(a.number(3)), static_cast<float>(a.number(4)), a.size(5),
                     static_cast<float>(a.number(6))};
  double u = a.number(7);
  a.check(s.temperature > 0 && s.topK >= 0 && s.topP > 0 && s.topP <= 1 && s.penalty > 0 && u >= 0 && u < 1,
          "needs temperature > 0, top_k >= 0, 0 < top_p <= 1, penalty > 0 and 0 <= u < 1");
  for (int64_t i = 0; a.ok() && i < nSeen; i++) a.check(seen[i] >= 0 && seen[i] < V, "a seen id is outside the vocabulary");
  if (!a.ok()) return env.Undefined();
  static SamplingScratch scratch;
  return Napi::Number::New(env, sampleToken(logits, V, seen, nSeen, s, u, scratch));
}

// argmax(logits, V) -> the first id of the best score (greedy decoding)
static Napi::Value Argmax(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "argmax");
  int64_t V;
  const float* logits = logitsArg(a, V);
  if (!a.ok()) return env.Undefined();
  return Napi::Number::New(env, argmaxScore(logits, V));
}

void registerSampling(Napi::Env env, Napi::Object exports) {
  exports.Set("sampleToken", Napi::Function::New(env, SampleToken));
  exports.Set("argmax", Napi::Function::New(env, Argmax));
}

}  // namespace lmf
