// The N-API binding of attention_kernels.h: arguments unpacked and every buffer checked against the shape it
// is given, then the kernels of the instruction set chosen at load time (cpu.cc).
#include "common.h"
#include "kernels.h"

namespace lmf {

namespace {
// The shape at info[first..first+12] (B, Tq, Tk, H, KV, D, qOffset, segQ|null, segK|null, scale, window, softcap,
// bf16), checked: sizes positive, heads a multiple of key/value heads, segment ids for both sides or neither and as
// long as the rows, window and softcap not negative (0 = none), bf16 a boolean.
AttentionShape shapeAt(Args& a, const Napi::CallbackInfo& info, int first) {
  AttentionShape s{a.size(first), a.size(first + 1), a.size(first + 2), a.size(first + 3), a.size(first + 4),
                   a.size(first + 5), a.size(first + 6), nullptr, nullptr, static_cast<float>(a.number(first + 9))};
  s.window = a.size(first + 10);
  s.softcap = static_cast<float>(a.number(first + 11));
  s.bf16 = a.flag(first + 12);
  a.check(s.window >= 0 && s.softcap >= 0.0f, "window and softcap must not be negative");
  a.check(s.B > 0 && s.Tq > 0 && s.Tk > 0 && s.H > 0 && s.KV > 0 && s.D > 0 && s.H % s.KV == 0 && s.qOffset >= 0,
          "sizes must be positive and heads a multiple of key/value heads");
  bool segQ = !(info[first + 7].IsNull() || info[first + 7].IsUndefined());
  bool segK = !(info[first + 8].IsNull() || info[first + 8].IsUndefined());
  a.check(segQ == segK, "segment ids are given for both queries and keys, or for neither");
  s.segQ = a.buffer<int32_t>(first + 7, Args::product({s.B, s.Tq}), "segQ", true);
  s.segK = a.buffer<int32_t>(first + 8, Args::product({s.B, s.Tk}), "segK", true);
  return s;
}
}  // namespace

// attentionForward(q, k, v, out, lse|null, B, Tq, Tk, H, KV, D, qOffset, segQ|null, segK|null, scale, window, softcap,
//                  bf16)
static Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  Args a(info, "attention");
  AttentionShape s = shapeAt(a, info, 5);
  int64_t qn = Args::product({s.B, s.Tq, s.H, s.D}), kn = Args::product({s.B, s.Tk, s.KV, s.D});
  const float* q = a.buffer<float>(0, qn, "q");
  const float* k = a.buffer<float>(1, kn, "k");
  const float* v = a.buffer<float>(2, kn, "v");
  float* out = a.buffer<float>(3, qn, "out");
  float* lse = a.buffer<float>(4, Args::product({s.B, s.H, s.Tq}), "lse", true);
  if (a.ok()) kernels().attentionForward(q, k, v, out, lse, s);
  return info.Env().Undefined();
}

// attentionBackward(q, k, v, out, dout, lse, dq, dk, dv, B, Tq, Tk, H, KV, D, qOffset, segQ, segK, scale, window,
//                   softcap, bf16)
static Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  Args a(info, "attention");
  AttentionShape s = shapeAt(a, info, 9);
  int64_t qn = Args::product({s.B, s.Tq, s.H, s.D}), kn = Args::product({s.B, s.Tk, s.KV, s.D});
  const float* q = a.buffer<float>(0, qn, "q");
  const float* k = a.buffer<float>(1, kn, "k");
  const float* v = a.buffer<float>(2, kn, "v");
  const float* out = a.buffer<float>(3, qn, "out");
  const float* dout = a.buffer<float>(4, qn, "dout");
  const float* lse = a.buffer<float>(5, Args::product({s.B, s.H, s.Tq}), "lse");
  float* dq = a.buffer<float>(6, qn, "dq");
  float* dk = a.buffer<float>(7, kn, "dk");
  float* dv = a.buffer<float>(8, kn, "dv");
  if (a.ok()) kernels().attentionBackward(q, k, v, out, dout, lse, dq, dk, dv, s);
  return info.Env().Undefined();
}

void registerAttention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionForward", Napi::Function::New(env, AttentionForward));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward));
}

}  // namespace lmf
