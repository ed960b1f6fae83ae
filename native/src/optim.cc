// The N-API bindings of optim_kernels.h: every array checked (Float32Arrays, gradients and moments as long as
// their parameters, a learning rate and a weight decay per tensor), then the kernel.
#include <string>
#include "common.h"
#include "optim_kernels.h"

namespace lmf {

namespace {
// The Float32Arrays of a JavaScript array; their sizes in elements. Throws (and returns false) on anything else.
bool float32Arrays(const Napi::Env& env, const Napi::Value& value, const char* name, std::vector<float*>& out,
                   std::vector<int64_t>& sizes) {
  if (!require(env, value.IsArray(), std::string("optimizer: ") + name + " must be an array of Float32Arrays")) return false;
  Napi::Array a = value.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value t = a.Get(i);
    if (!require(env, t.IsTypedArray() && t.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array,
                 std::string("optimizer: ") + name + "[" + std::to_string(i) + "] must be a Float32Array"))
      return false;
    out.push_back(ptr<float>(t));
    sizes.push_back(static_cast<int64_t>(byteLength(t) / 4));
  }
  return true;
}
}  // namespace

// sumSquares(arrays) -> sum of x^2 over every element of every array, accumulated in double.
static Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<float*> x;
  std::vector<int64_t> sizes;
  if (!float32Arrays(env, info[0], "arrays", x, sizes)) return env.Undefined();
  return Napi::Number::New(env, sumSquares(std::vector<const float*>(x.begin(), x.end()), sizes));
}

// adamw(params, grads, m, v, lr:Float64Array, weightDecay:Float64Array, beta1, beta2, eps, step, gradScale)
static Napi::Value AdamW(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<float*> p, g, m, v;
  std::vector<int64_t> sizes, gs, ms, vs;
  if (!float32Arrays(env, info[0], "params", p, sizes) || !float32Arrays(env, info[1], "grads", g, gs) ||
      !float32Arrays(env, info[2], "m", m, ms) || !float32Arrays(env, info[3], "v", v, vs))
    return env.Undefined();
  for (size_t i = 0; i < p.size(); i++)
    if (!require(env, i < gs.size() && i < ms.size() && i < vs.size() && gs[i] >= sizes[i] && ms[i] >= sizes[i] && vs[i] >= sizes[i],
                 "adamw: the gradient and moments of parameter " + std::to_string(i) + " are smaller than it"))
      return env.Undefined();
  Args a(info, "adamw");
  const double* lr = a.buffer<double>(4, static_cast<int64_t>(p.size()), "lr");
  const double* wd = a.buffer<double>(5, static_cast<int64_t>(p.size()), "weightDecay");
  AdamWSettings s{a.number(6), a.number(7), a.number(8), a.number(9), static_cast<float>(a.number(10))};
  if (!a.ok()) return env.Undefined();
  adamw(p, std::vector<const float*>(g.begin(), g.end()), m, v, sizes, lr, wd, s);
  return env.Undefined();
}

void registerOptim(Napi::Env env, Napi::Object exports) {
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares));
  exports.Set("adamw", Napi::Function::New(env, AdamW));
}

}  // namespace lmf
