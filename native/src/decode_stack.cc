// decodeLayers: a whole stack of attention blocks for the few new tokens of one sequence, in one call, with a live
// LoRA adapter's update on any projection. Decoding runs about fourteen kernels per layer; called one by one from
// JavaScript they cost a SmolLM2-sized model ~2 ms of a ~18 ms token (the JavaScript between them runs on caches
// the weight stream has just emptied). This is the same block as src/models/decoder.ts (DecoderLayer.forward with
// KvCache.attend) on the same kernels in the same order, so both give the same bits; src/models/native-stack.ts
// decides when a model can take it.
#include <algorithm>
#include <string>
#include <vector>
#include "common.h"
#include "elementwise_kernels.h"
#include "kernels.h"
#include "norm_rope_kernels.h"

namespace lmf {

namespace {

// A layer's entries by position in its array (src/models/native-stack.ts writes them in this order), null where
// the layer has no such part. A projection is itself an array: weight (f32 or bf16 [out, in], or an array for a
// quantized base's codes), bias (f32 or null), and a live LoRA adapter's A [r, in], B [out, r] (f32, or null) and
// scale. A 4-bit weight is [packed, absmax (f32 per block, or null), table, blocksize, and for a double-quantized
// absmax: codes, nested absmax, nested blocksize, offset, map], gemv4bit's operands; an 8-bit one [codes (int8
// [out, in]), scales (f32 per row)], gemvInt8's.
enum Slot : uint32_t {
  kAttnIn, kAttnOut, kMlpIn, kMlpOut, kQNorm, kKNorm,
  kQkv, kQ, kK, kV, kO, kGateUp, kGate, kUp, kDown,
  kKeys, kValues, kCos, kSin, kRotaryDim, kWindow, kSlots
};
enum ProjectionSlot : uint32_t { kWeight, kBias, kLoraA, kLoraB, kLoraScale, kProjectionSlots };
enum FourBitSlot : uint32_t { kPacked, kAbsmax, kTable, kBlocksize, kCodes, kNested, kNestedBlocksize, kOffset, kMap, kFourBitSlots };
enum Int8Slot : uint32_t { kInt8Codes, kInt8Scales, kInt8Slots };

// A QLoRA base's weight in bitsandbytes' 4-bit codes, read in registers (gemv4bit).
struct FourBit {
  const uint8_t* packed = nullptr;
  BlockScales scales;
  const float* table = nullptr;
  int64_t blocksize = 0;
};

// An 8-bit base's weight: codes with a scale per row, read in place (gemvInt8).
struct Int8 {
  const int8_t* codes = nullptr;
  const float* scales = nullptr;
};

// The model-wide sizes and settings (decodeLayers' number arguments).
struct StackShape {
  int64_t M, cached, C, H, KV, D, I;
  float eps, scale, softcap;
  bool gelu;
};

struct Projection {
  const void* w = nullptr;  // null: the weight is int8's codes, or else fourBit's
  bool bf16 = false;
  FourBit fourBit;
  Int8 int8;
  const float* bias = nullptr;
  const float *loraA = nullptr, *loraB = nullptr;
  int64_t N = 0, K = 0, rank = 0;
  float loraScale = 0.0f;
  // y[M, N] = x[M, K] · Wᵀ (+ bias) (+ scale · (x·Aᵀ)·Bᵀ), as src/tensor/ops/linear.ts projects a few f32 rows and
  // lora-linear.ts adds an adapter's update (`u` holds x·Aᵀ)
  void apply(const float* x, float* y, int64_t M, float* u) const {
    if (w) linearRows(x, w, bf16, bias, y, M, N, K);
    else if (int8.codes) kernels().gemvInt8(x, int8.codes, int8.scales, y, M, N, K, false, bias);
    else kernels().gemv4bit(x, fourBit.packed, fourBit.scales, fourBit.table, fourBit.blocksize, y, M, N, K, false, bias);
    if (!loraA) return;
    gemm(x, loraA, u, M, rank, K, false, true, false, nullptr, F32);
    axpby(u, nullptr, u, M * rank, loraScale, 0.0f);
    gemm(u, loraB, y, M, N, rank, false, true, true, nullptr, F32);
  }
};

// Reads one layer's array, checking every buffer against the sizes it must have; the first mismatch throws a
// TypeError naming the layer and the buffer.
class LayerReader {
 public:
  LayerReader(const Napi::Env& env, const Napi::Array& layer, uint32_t index) : env_(env), layer_(layer), index_(index) {
    if (layer_.Length() != kSlots) fail("array", "has " + std::to_string(layer_.Length()) + " entries");
  }
  bool ok() const { return ok_; }
  bool present(Slot s) const { return !layer_.Get(s).IsNull(); }

  template <typename T>
  T* floats(Slot s, int64_t count, const char* name, bool optional = false) {
    return buffer<T>(layer_.Get(s), count, name, optional);
  }

  Projection projection(Slot s, int64_t N, int64_t K, const char* name) {
    Projection p;
    const Napi::Value v = layer_.Get(s);
    if (!v.IsArray() || v.As<Napi::Array>().Length() != kProjectionSlots) {
      fail(name, "must be an array of weight, bias, LoRA A, LoRA B and scale");
      return p;
    }
    const Napi::Array parts = v.As<Napi::Array>();
    p.N = N;
    p.K = K;
    const std::string what(name);
    const Napi::Value weight = parts.Get(kWeight);
    if (weight.IsArray() && weight.As<Napi::Array>().Length() == kInt8Slots) {
      const Napi::Array codes = weight.As<Napi::Array>();
      p.int8.codes = buffer<const int8_t>(codes.Get(kInt8Codes), N * K, (what + " 8-bit codes").c_str());
      p.int8.scales = buffer<const float>(codes.Get(kInt8Scales), N, (what + " 8-bit scales").c_str());
    } else if (weight.IsArray()) {
      p.fourBit = fourBit(weight.As<Napi::Array>(), N, K, what + " 4-bit weight");
    } else {
      napi_typedarray_type type;
      size_t length = 0;
      void* data = nullptr;
      if (napi_get_typedarray_info(env_, weight, &type, &length, &data, nullptr, nullptr) != napi_ok ||
          (type != napi_float32_array && type != napi_uint16_array)) {
        fail(name, "weight must be a Float32Array (f32), a Uint16Array (bf16) or an array (8-bit or 4-bit codes)");
        return p;
      }
      if (static_cast<int64_t>(length) != N * K) fail(name, "weight does not match its sizes");
      p.w = data;
      p.bf16 = type == napi_uint16_array;
    }
    p.bias = buffer<const float>(parts.Get(kBias), N, (what + " bias").c_str(), true);
    const TypedView a = typedView(parts.Get(kLoraA));
    if (a.ok) {
      p.rank = static_cast<int64_t>(a.bytes / sizeof(float)) / K;
      check(p.rank > 0 && p.rank * K * static_cast<int64_t>(sizeof(float)) == static_cast<int64_t>(a.bytes), name,
            "LoRA A must hold [rank, in] values");
      p.loraA = static_cast<const float*>(a.data);
      p.loraB = buffer<const float>(parts.Get(kLoraB), N * p.rank, (what + " LoRA B").c_str());
      double scale = 0.0;
      if (napi_get_value_double(env_, parts.Get(kLoraScale), &scale) != napi_ok) fail(name, "LoRA scale must be a number");
      p.loraScale = static_cast<float>(scale);
    }
    return p;
  }

  void check(bool cond, const char* name, const char* what) {
    if (!cond) fail(name, what);
  }

  // a 4-bit weight's entries, checked as gemv4bit checks its arguments
  FourBit fourBit(const Napi::Array& parts, int64_t N, int64_t K, const std::string& name) {
    FourBit q;
    const char* what = name.c_str();
    if (parts.Length() != kFourBitSlots) {
      fail(what, "must hold packed codes, absmax, table, blocksize and the double quantization's entries");
      return q;
    }
    q.blocksize = integer(parts.Get(kBlocksize), what);
    check(q.blocksize > 0 && q.blocksize % 32 == 0 && K % q.blocksize == 0, what,
          "needs a blocksize that is a multiple of 32 and divides the input size");
    if (!ok_) return q;
    const int64_t blocks = N * K / q.blocksize;
    q.packed = buffer<const uint8_t>(parts.Get(kPacked), N * K / 2, (name + " codes").c_str());
    q.table = buffer<const float>(parts.Get(kTable), 16, (name + " table").c_str());
    q.scales.values = buffer<const float>(parts.Get(kAbsmax), blocks, (name + " absmax").c_str(), true);
    if (!q.scales.values) {
      q.scales.nestedBlocksize = integer(parts.Get(kNestedBlocksize), what);
      check(q.scales.nestedBlocksize > 0, what, "needs a nested blocksize > 0");
      if (!ok_) return q;
      q.scales.codes = buffer<const uint8_t>(parts.Get(kCodes), blocks, (name + " absmax codes").c_str());
      const int64_t nested = (blocks + q.scales.nestedBlocksize - 1) / q.scales.nestedBlocksize;
      q.scales.nested = buffer<const float>(parts.Get(kNested), nested, (name + " nested absmax").c_str());
      double offset = 0.0;
      if (napi_get_value_double(env_, parts.Get(kOffset), &offset) != napi_ok) fail(what, "offset must be a number");
      q.scales.offset = static_cast<float>(offset);
      q.scales.map = buffer<const float>(parts.Get(kMap), 256, (name + " map").c_str());
    }
    return q;
  }

  int64_t number(Slot s) { return integer(layer_.Get(s), "setting"); }

  int64_t integer(const Napi::Value& v, const char* name) {
    int64_t n = 0;
    if (napi_get_value_int64(env_, v, &n) != napi_ok) fail(name, "must be a number");
    return n;
  }

 private:
  // a typed array of at least `count` elements of T (null allowed when optional)
  template <typename T>
  T* buffer(const Napi::Value& v, int64_t count, const char* name, bool optional = false) {
    const char* problem = nullptr;
    T* data = sizedBuffer<T>(v, count, optional, problem);
    if (problem) fail(name, problem);
    return data;
  }
  void fail(const char* name, const std::string& what) {
    if (!ok_) return;
    ok_ = false;
    Napi::TypeError::New(env_, "lmf_native: decodeLayers: layer " + std::to_string(index_) + " " + name + " " + what)
        .ThrowAsJavaScriptException();
  }
  Napi::Env env_;
  Napi::Array layer_;
  uint32_t index_;
  bool ok_ = true;
};

// One block's buffers, read and checked.
struct Block {
  const float *attnIn, *attnOut, *mlpIn, *mlpOut, *qNorm, *kNorm;
  Projection qkv, q, k, v, o, gateUp, gate, up, down;
  bool fusedQkv, fusedGateUp;
  float *keys, *values;
  const float *cos, *sin;
  int64_t rotaryDim, window;
  // the largest LoRA rank among its projections (0: no adapter)
  int64_t rank() const {
    int64_t r = 0;
    for (const Projection* p : {&qkv, &q, &k, &v, &o, &gateUp, &gate, &up, &down}) r = std::max(r, p->rank);
    return r;
  }
};

bool readBlock(LayerReader& r, const StackShape& s, Block& b) {
  const int64_t qDim = s.H * s.D, kvDim = s.KV * s.D, rows = s.cached + s.M;
  b.attnIn = r.floats<const float>(kAttnIn, s.C, "input norm");
  b.attnOut = r.floats<const float>(kAttnOut, s.C, "attention output norm", true);
  b.mlpIn = r.floats<const float>(kMlpIn, s.C, "MLP norm");
  b.mlpOut = r.floats<const float>(kMlpOut, s.C, "MLP output norm", true);
  b.qNorm = r.floats<const float>(kQNorm, s.D, "q norm", true);
  b.kNorm = r.floats<const float>(kKNorm, s.D, "k norm", true);
  b.fusedQkv = r.present(kQkv);
  if (b.fusedQkv) {
    b.qkv = r.projection(kQkv, qDim + 2 * kvDim, s.C, "qkv_proj");
  } else {
    b.q = r.projection(kQ, qDim, s.C, "q_proj");
    b.k = r.projection(kK, kvDim, s.C, "k_proj");
    b.v = r.projection(kV, kvDim, s.C, "v_proj");
  }
  b.o = r.projection(kO, s.C, qDim, "o_proj");
  b.fusedGateUp = r.present(kGateUp);
  if (b.fusedGateUp) {
    b.gateUp = r.projection(kGateUp, 2 * s.I, s.C, "gate_up_proj");
  } else {
    b.gate = r.projection(kGate, s.I, s.C, "gate_proj");
    b.up = r.projection(kUp, s.I, s.C, "up_proj");
  }
  b.down = r.projection(kDown, s.C, s.I, "down_proj");
  b.keys = r.floats<float>(kKeys, rows * kvDim, "key cache");
  b.values = r.floats<float>(kValues, rows * kvDim, "value cache");
  b.rotaryDim = r.number(kRotaryDim);
  b.window = r.number(kWindow);
  r.check(b.rotaryDim >= 0 && b.rotaryDim % 2 == 0 && b.rotaryDim <= s.D, "rotary size",
          "must be even and no larger than the head (0: no rotation)");
  r.check(b.window >= 0, "window", "must not be negative (0: none)");
  const bool rotates = b.rotaryDim > 0;
  b.cos = rotates ? r.floats<const float>(kCos, s.M * (b.rotaryDim / 2), "rope cos") : nullptr;
  b.sin = rotates ? r.floats<const float>(kSin, s.M * (b.rotaryDim / 2), "rope sin") : nullptr;
  return r.ok();
}

// The columns [from, from + n) of rows [M, width] into dst [M, n] (a fused projection's parts).
void takeColumns(const float* src, int64_t M, int64_t width, int64_t from, int64_t n, float* dst) {
  for (int64_t m = 0; m < M; m++) std::memcpy(dst + m * n, src + m * width + from, static_cast<size_t>(n) * 4);
}

// The work buffers of one call, sized once for its rows.
struct Work {
  std::vector<float> x, fused, q, k, v, att, out, gate, up, act, lora;
  Work(const StackShape& s, int64_t rank)
      : x(s.M * s.C), fused(s.M * std::max(s.H * s.D + 2 * s.KV * s.D, 2 * s.I)), q(s.M * s.H * s.D),
        k(s.M * s.KV * s.D), v(s.M * s.KV * s.D), att(s.M * s.H * s.D), out(s.M * s.C), gate(s.M * s.I),
        up(s.M * s.I), act(s.M * s.I), lora(s.M * rank) {}
};

// h (+)= the block's attention and MLP, DecoderLayer.forward's steps (rmsnorm's group size is its weight's).
void runBlock(const Block& b, const StackShape& s, float* h, Work& w) {
  const int64_t M = s.M, C = s.C, qDim = s.H * s.D, kvDim = s.KV * s.D;
  float *x = w.x.data(), *u = w.lora.data();
  rmsnormForward(h, b.attnIn, x, nullptr, M, C, s.eps);
  if (b.fusedQkv) {
    b.qkv.apply(x, w.fused.data(), M, u);
    const int64_t width = qDim + 2 * kvDim;
    takeColumns(w.fused.data(), M, width, 0, qDim, w.q.data());
    takeColumns(w.fused.data(), M, width, qDim, kvDim, w.k.data());
    takeColumns(w.fused.data(), M, width, qDim + kvDim, kvDim, w.v.data());
  } else {
    b.q.apply(x, w.q.data(), M, u);
    b.k.apply(x, w.k.data(), M, u);
    b.v.apply(x, w.v.data(), M, u);
  }
  if (b.qNorm && b.kNorm) {
    rmsnormForward(w.q.data(), b.qNorm, w.q.data(), nullptr, M * s.H, s.D, s.eps);
    rmsnormForward(w.k.data(), b.kNorm, w.k.data(), nullptr, M * s.KV, s.D, s.eps);
  }
  if (b.rotaryDim > 0) {
    rope(w.q.data(), b.cos, b.sin, M, s.H, s.D, b.rotaryDim, false);
    rope(w.k.data(), b.cos, b.sin, M, s.KV, s.D, b.rotaryDim, false);
  }
  // the new keys and values join the cache, then the new queries attend to all of it
  std::memcpy(b.keys + s.cached * kvDim, w.k.data(), static_cast<size_t>(M * kvDim) * 4);
  std::memcpy(b.values + s.cached * kvDim, w.v.data(), static_cast<size_t>(M * kvDim) * 4);
  AttentionShape shape{1, M, s.cached + M, s.H, s.KV, s.D, s.cached, nullptr, nullptr, s.scale};
  shape.window = b.window;
  shape.softcap = s.softcap;
  kernels().attentionForward(w.q.data(), b.keys, b.values, w.att.data(), nullptr, shape);
  float* out = w.out.data();
  b.o.apply(w.att.data(), out, M, u);
  if (b.attnOut) rmsnormForward(out, b.attnOut, out, nullptr, M, C, s.eps);
  axpby(out, h, h, M * C, 1.0f, 1.0f);
  rmsnormForward(h, b.mlpIn, x, nullptr, M, C, s.eps);
  if (b.fusedGateUp) {
    b.gateUp.apply(x, w.fused.data(), M, u);
    takeColumns(w.fused.data(), M, 2 * s.I, 0, s.I, w.gate.data());
    takeColumns(w.fused.data(), M, 2 * s.I, s.I, s.I, w.up.data());
  } else {
    b.gate.apply(x, w.gate.data(), M, u);
    b.up.apply(x, w.up.data(), M, u);
  }
  if (s.gelu) gegluForward(w.gate.data(), w.up.data(), w.act.data(), M * s.I);
  else swigluForward(w.gate.data(), w.up.data(), w.act.data(), M * s.I);
  b.down.apply(w.act.data(), out, M, u);
  if (b.mlpOut) rmsnormForward(out, b.mlpOut, out, nullptr, M, C, s.eps);
  axpby(out, h, h, M * C, 1.0f, 1.0f);
}

}  // namespace

// decodeLayers(h, layers, M, cached, C, H, KV, D, I, eps, scale, softcap, gelu): h [M, C] runs through every layer
// in place (M <= 4: the products are decoding's kernels, gemv_kernels.h). Each layer is an array in Slot order;
// its key and value caches hold `cached` rows and room for the M this call writes.
static Napi::Value DecodeLayers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "decodeLayers");
  StackShape s{a.size(2), a.size(3), a.size(4), a.size(5), a.size(6), a.size(7), a.size(8),
               static_cast<float>(a.number(9)), static_cast<float>(a.number(10)), static_cast<float>(a.number(11)),
               false};
  s.gelu = info[12].ToBoolean().Value();
  a.check(s.M > 0 && s.M <= kGemvMaxRows, "takes 1 to 4 new tokens (decoding)");
  a.check(s.cached >= 0 && s.C > 0 && s.H > 0 && s.KV > 0 && s.D > 0 && s.I > 0 && s.H % s.KV == 0,
          "sizes must be positive and heads a multiple of key/value heads");
  float* h = a.buffer<float>(0, Args::product({s.M, s.C}), "h");
  a.check(info[1].IsArray(), "layers must be an array");
  if (!a.ok()) return env.Undefined();
  const Napi::Array layers = info[1].As<Napi::Array>();
  std::vector<Block> blocks(layers.Length());
  for (uint32_t l = 0; l < layers.Length(); l++) {
    const Napi::Value layer = layers.Get(l);
    if (!require(env, layer.IsArray(), "decodeLayers: layer " + std::to_string(l) + " must be an array"))
      return env.Undefined();
    LayerReader reader(env, layer.As<Napi::Array>(), l);
    if (!readBlock(reader, s, blocks[l])) return env.Undefined();
  }
  int64_t rank = 0;
  for (const Block& b : blocks) rank = std::max(rank, b.rank());
  Work work(s, rank);
  for (const Block& b : blocks) runBlock(b, s, h, work);
  return env.Undefined();
}

void registerDecodeStack(Napi::Env env, Napi::Object exports) {
  exports.Set("decodeLayers", Napi::Function::New(env, DecodeLayers));
}

}  // namespace lmf
