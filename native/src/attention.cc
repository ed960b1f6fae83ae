// The N-API binding of attention_kernels.h: arguments unpacked and every buffer checked against the shape it
// is given, then the kernels of the instruction set chosen at load time (cpu.cc).
#include "common.h"
#include "kernels.h"

namespace lmf {

namespace {
// Reads the shape from info[first..first+9]: B, Tq, Tk, H, KV, D, qOffset, segQ|null, segK|null, scale.
AttentionShape shapeAt(const Napi::CallbackInfo& info, int first) {
  return AttentionShape{i64(info[first]), i64(info[first + 1]), i64(info[first + 2]), i64(info[first + 3]),
                        i64(info[first + 4]), i64(info[first + 5]), i64(info[first + 6]), ptr<int32_t>(info[first + 7]),
                        ptr<int32_t>(info[first + 8]), static_cast<float>(f64(info[first + 9]))};
}

// Each named f32 (or i32) buffer must hold `count` elements; throws a JavaScript TypeError naming it otherwise.
bool holds(const Napi::Env& env, const Napi::Value& v, int64_t count, const char* name) {
  if (v.IsNull() || v.IsUndefined()) return require(env, false, std::string("attention: ") + name + " is missing");
  return require(env, v.IsTypedArray() && count >= 0 && byteLength(v) >= static_cast<size_t>(count) * 4,
                 std::string("attention: ") + name + " is smaller than its shape");
}

bool validShape(const Napi::Env& env, const Napi::CallbackInfo& info, const AttentionShape& s, int first) {
  if (!require(env, s.B > 0 && s.Tq > 0 && s.Tk > 0 && s.H > 0 && s.KV > 0 && s.D > 0 && s.H % s.KV == 0 && s.qOffset >= 0,
               "attention: sizes must be positive and heads a multiple of key/value heads"))
    return false;
  bool segQ = !(info[first + 7].IsNull() || info[first + 7].IsUndefined());
  bool segK = !(info[first + 8].IsNull() || info[first + 8].IsUndefined());
  if (!require(env, segQ == segK, "attention: segment ids are given for both queries and keys, or for neither")) return false;
  return !segQ || (holds(env, info[first + 7], s.B * s.Tq, "segQ") && holds(env, info[first + 8], s.B * s.Tk, "segK"));
}
}  // namespace

// attentionForward(q, k, v, out, lse|null, B, Tq, Tk, H, KV, D, qOffset, segQ|null, segK|null, scale)
static Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AttentionShape s = shapeAt(info, 5);
  if (!validShape(env, info, s, 5)) return env.Undefined();
  int64_t qn = s.B * s.Tq * s.H * s.D, kn = s.B * s.Tk * s.KV * s.D;
  if (!holds(env, info[0], qn, "q") || !holds(env, info[1], kn, "k") || !holds(env, info[2], kn, "v") ||
      !holds(env, info[3], qn, "out"))
    return env.Undefined();
  bool hasLse = !(info[4].IsNull() || info[4].IsUndefined());
  if (hasLse && !holds(env, info[4], s.B * s.H * s.Tq, "lse")) return env.Undefined();
  kernels().attentionForward(ptr<float>(info[0]), ptr<float>(info[1]), ptr<float>(info[2]), ptr<float>(info[3]),
                             ptr<float>(info[4]), s);
  return env.Undefined();
}

// attentionBackward(q, k, v, out, dout, lse, dq, dk, dv, B, Tq, Tk, H, KV, D, qOffset, segQ, segK, scale)
static Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AttentionShape s = shapeAt(info, 9);
  if (!validShape(env, info, s, 9)) return env.Undefined();
  int64_t qn = s.B * s.Tq * s.H * s.D, kn = s.B * s.Tk * s.KV * s.D;
  const char* names[] = {"q", "k", "v", "out", "dout", "lse", "dq", "dk", "dv"};
  const int64_t counts[] = {qn, kn, kn, qn, qn, s.B * s.H * s.Tq, qn, kn, kn};
  for (int i = 0; i < 9; i++)
    if (!holds(env, info[i], counts[i], names[i])) return env.Undefined();
  kernels().attentionBackward(ptr<float>(info[0]), ptr<float>(info[1]), ptr<float>(info[2]), ptr<float>(info[3]),
                              ptr<float>(info[4]), ptr<float>(info[5]), ptr<float>(info[6]), ptr<float>(info[7]),
                              ptr<float>(info[8]), s);
  return env.Undefined();
}

void registerAttention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionForward", Napi::Function::New(env, AttentionForward));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward));
}

}  // namespace lmf
