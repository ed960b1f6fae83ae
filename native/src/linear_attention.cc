// The N-API bindings of Qwen3.5's Gated DeltaNet kernels (linear_attention_kernels.h: the convolution;
// delta_rule_kernels.h through the instruction-set table: the gated delta rule): arguments checked against their
// sizes, then the kernel.
#include "common.h"
#include "kernels.h"
#include "linear_attention_kernels.h"

namespace lmf {

// causalConvSiluForward(x, w, out, B, T, C, K, segments|null, history|null)
static Napi::Value CausalConvSiluForward(const Napi::CallbackInfo& info) {
  Args a(info, "causalConvSiluForward");
  int64_t B = a.size(3), T = a.size(4), C = a.size(5), K = a.size(6);
  a.check(B > 0 && T > 0 && C > 0 && K > 0, "needs B, T, C, K > 0");
  int64_t N = Args::product({B, T, C});
  const float* x = a.buffer<float>(0, N, "x");
  const float* w = a.buffer<float>(1, Args::product({C, K}), "w");
  float* out = a.buffer<float>(2, N, "out");
  const int32_t* seg = a.buffer<int32_t>(7, Args::product({B, T}), "segments", true);
  const float* history = a.buffer<float>(8, Args::product({K - 1, C}), "history", true);
  a.check(!history || (B == 1 && !seg), "history is for one sequence without segments");
  if (a.ok()) causalConvSiluForward(x, w, out, B, T, C, K, seg, history);
  return info.Env().Undefined();
}

// causalConvSiluBackward(x, w, dout, dx, dw, B, T, C, K, segments|null): dw accumulates
static Napi::Value CausalConvSiluBackward(const Napi::CallbackInfo& info) {
  Args a(info, "causalConvSiluBackward");
  int64_t B = a.size(5), T = a.size(6), C = a.size(7), K = a.size(8);
  a.check(B > 0 && T > 0 && C > 0 && K > 0, "needs B, T, C, K > 0");
  int64_t N = Args::product({B, T, C}), W = Args::product({C, K});
  const float* x = a.buffer<float>(0, N, "x");
  const float* w = a.buffer<float>(1, W, "w");
  const float* dout = a.buffer<float>(2, N, "dout");
  float* dx = a.buffer<float>(3, N, "dx");
  float* dw = a.buffer<float>(4, W, "dw");
  const int32_t* seg = a.buffer<int32_t>(9, Args::product({B, T}), "segments", true);
  if (a.ok()) causalConvSiluBackward(x, w, dout, dx, dw, B, T, C, K, seg);
  return info.Env().Undefined();
}

// Channels of the convolved q|k|v rows: q and k of every key head, v of every value head.
static int64_t deltaChannels(const DeltaShape& s) { return 2 * s.Hk * s.dk + s.Hv * s.dv; }

// The shape arguments B, T, Hk, Hv, dk, dv starting at `at`, checked.
static DeltaShape deltaShape(Args& a, int at) {
  DeltaShape s{a.size(at), a.size(at + 1), a.size(at + 2), a.size(at + 3), a.size(at + 4), a.size(at + 5)};
  a.check(s.B > 0 && s.T > 0 && s.Hk > 0 && s.Hv > 0 && s.dk > 0 && s.dv > 0, "needs B, T, Hk, Hv, dk, dv > 0");
  a.check(s.Hk > 0 && s.Hv % s.Hk == 0, "value heads must be a multiple of key heads");
  // every product the kernels index by must fit: the buffer checks below rely on them
  a.check(Args::product({s.B, s.T, s.Hv, s.dk, s.dv}) > 0 && Args::product({s.B, s.T, deltaChannels(s)}) > 0,
          "sizes overflow");
  return s;
}

static int64_t deltaChunks(const DeltaShape& s) { return (s.T + kDeltaChunk - 1) / kDeltaChunk; }

// The inputs qkv, b, a, A_log, dt_bias (arguments 0-4) and the segments at `segAt`.
static DeltaInputs deltaInputs(Args& a, const DeltaShape& s, int segAt) {
  const int64_t N = s.B * s.T;
  return DeltaInputs{a.buffer<float>(0, Args::product({N, deltaChannels(s)}), "qkv"),
                     a.buffer<float>(1, N * s.Hv, "b"),
                     a.buffer<float>(2, N * s.Hv, "a"),
                     a.buffer<float>(3, s.Hv, "A_log"),
                     a.buffer<float>(4, s.Hv, "dt_bias"),
                     a.buffer<int32_t>(segAt, N, "segments", true)};
}

// gatedDeltaForward(qkv, b, a, Alog, dtBias, out, B, T, Hk, Hv, dk, dv, segments|null, checkpoints|null,
//                   initState|null, finalState|null): the chunked form (training, prompts)
static Napi::Value GatedDeltaForward(const Napi::CallbackInfo& info) {
  Args a(info, "gatedDeltaForward");
  DeltaShape s = deltaShape(a, 6);
  int64_t states = Args::product({s.B, s.Hv, s.dk, s.dv});
  DeltaInputs in = deltaInputs(a, s, 12);
  float* out = a.buffer<float>(5, Args::product({s.B * s.T, s.Hv, s.dv}), "out");
  float* checkpoints = a.buffer<float>(13, Args::product({s.B, s.Hv, deltaChunks(s), s.dk, s.dv}), "checkpoints", true);
  const float* initState = a.buffer<float>(14, states, "initState", true);
  float* finalState = a.buffer<float>(15, states, "finalState", true);
  if (a.ok()) kernels().deltaChunkedForward(s, in, out, checkpoints, initState, finalState);
  return info.Env().Undefined();
}

// gatedDeltaRecurrent(qkv, b, a, Alog, dtBias, out, B, T, Hk, Hv, dk, dv, segments|null, initState|null,
//                     finalState|null): token by token (decoding)
static Napi::Value GatedDeltaRecurrent(const Napi::CallbackInfo& info) {
  Args a(info, "gatedDeltaRecurrent");
  DeltaShape s = deltaShape(a, 6);
  int64_t states = Args::product({s.B, s.Hv, s.dk, s.dv});
  DeltaInputs in = deltaInputs(a, s, 12);
  float* out = a.buffer<float>(5, Args::product({s.B * s.T, s.Hv, s.dv}), "out");
  const float* initState = a.buffer<float>(13, states, "initState", true);
  float* finalState = a.buffer<float>(14, states, "finalState", true);
  if (a.ok()) kernels().deltaRecurrentForward(s, in, out, initState, finalState);
  return info.Env().Undefined();
}

// gatedDeltaBackward(qkv, b, a, Alog, dtBias, dout, checkpoints, dqkv, db, da, dAlog, ddtBias,
//                    B, T, Hk, Hv, dk, dv, segments|null): dAlog and ddtBias accumulate
static Napi::Value GatedDeltaBackward(const Napi::CallbackInfo& info) {
  Args a(info, "gatedDeltaBackward");
  DeltaShape s = deltaShape(a, 12);
  int64_t N = s.B * s.T;
  DeltaInputs in = deltaInputs(a, s, 18);
  const float* dout = a.buffer<float>(5, Args::product({N, s.Hv, s.dv}), "dout");
  const float* checkpoints = a.buffer<float>(6, Args::product({s.B, s.Hv, deltaChunks(s), s.dk, s.dv}), "checkpoints");
  float* dqkv = a.buffer<float>(7, Args::product({N, deltaChannels(s)}), "dqkv");
  float* db = a.buffer<float>(8, N * s.Hv, "db");
  float* da = a.buffer<float>(9, N * s.Hv, "da");
  float* dAlog = a.buffer<float>(10, s.Hv, "dAlog");
  float* ddtBias = a.buffer<float>(11, s.Hv, "ddtBias");
  if (a.ok()) kernels().deltaChunkedBackward(s, in, dout, checkpoints, dqkv, db, da, dAlog, ddtBias);
  return info.Env().Undefined();
}

void registerLinearAttention(Napi::Env env, Napi::Object exports) {
  exports.Set("causalConvSiluForward", Napi::Function::New(env, CausalConvSiluForward));
  exports.Set("causalConvSiluBackward", Napi::Function::New(env, CausalConvSiluBackward));
  exports.Set("gatedDeltaForward", Napi::Function::New(env, GatedDeltaForward));
  exports.Set("gatedDeltaRecurrent", Napi::Function::New(env, GatedDeltaRecurrent));
  exports.Set("gatedDeltaBackward", Napi::Function::New(env, GatedDeltaBackward));
}

}  // namespace lmf
