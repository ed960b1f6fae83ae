// Matrix multiply through oneDNN (decoding's few rows and, on the AVX-512 paths, the f32 input gradients' form on
// kernels of our own): C[M,N] (+)= op(A)[M,K] · op(B)[K,N] (+ bias[N]).
// A and B are f32 or bf16 (both the same type); C and bias are f32, so bf16 inputs accumulate in f32.
// Primitives are cached by shape and flags: creating one costs far more than running a small one.
#include <omp.h>
#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <tuple>
#include <dnnl.hpp>
#include "common.h"
#include "elementwise_kernels.h"
#include "kernels.h"
#include "signal_shield.h"

namespace lmf {

namespace {
using dnnl::memory;
// the last field is the thread count: a primitive splits its work for the threads it was made for (src/threads.ts
// changes the count on a shared machine)
using Key = std::tuple<int64_t, int64_t, int64_t, bool, bool, bool, bool, int, int>;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
dnnl::stream& stream() {
  static dnnl::stream s(engine());
  return s;
}

struct Cached {
  dnnl::matmul prim;
  memory::desc a, b, c, bias;
};

std::map<Key, std::unique_ptr<Cached>>& cache() {
  static std::map<Key, std::unique_ptr<Cached>> c;
  return c;
}

Cached& primitive(int64_t M, int64_t N, int64_t K, bool transA, bool transB, bool accumulate, bool hasBias,
                  DType dtype) {
  Key key{M, N, K, transA, transB, accumulate, hasBias, dtype, omp_get_max_threads()};
  auto it = cache().find(key);
  if (it != cache().end()) return *it->second;
  auto dt = dtype == BF16 ? memory::data_type::bf16 : memory::data_type::f32;
  auto c = std::make_unique<Cached>();
  c->a = memory::desc({M, K}, dt, transA ? memory::dims{1, M} : memory::dims{K, 1});
  c->b = memory::desc({K, N}, dt, transB ? memory::dims{1, K} : memory::dims{N, 1});
  c->c = memory::desc({M, N}, memory::data_type::f32, memory::dims{N, 1});
  c->bias = hasBias ? memory::desc({1, N}, memory::data_type::f32, memory::dims{N, 1}) : memory::desc();
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  dnnl::matmul::desc d = hasBias ? dnnl::matmul::desc(c->a, c->b, c->bias, c->c) : dnnl::matmul::desc(c->a, c->b, c->c);
  dnnl::matmul::primitive_desc pd(d, attr, engine());
  c->prim = dnnl::matmul(pd);
  Cached& ref = *c;
  cache().emplace(key, std::move(c));
  return ref;
}
}  // namespace

// Row counts that vary (prompt lengths, padded batches) are rounded up to a few sizes: every new shape costs a
// oneDNN primitive (about 50 ms of code generation each), a few zero rows cost far less.
int64_t bucketRows(int64_t M) {
  int64_t step = M <= 512 ? 32 : 128;
  return (M + step - 1) / step * step;
}

namespace {
constexpr int kSlotPadA = 120, kSlotPadC = 121, kSlotWideA = 122, kSlotWideB = 123, kSlotWidePanel = 124,
              kSlotRoundA = 125;
// Widened bf16 operands are made a panel of B at a time above this many values, so that the f32 copy of a large
// weight (an LM head: 2 GB for Llama 3's) never exists whole
constexpr int64_t kWidePanelFloats = int64_t{4} << 20;
// A transposed A is widened a slice of the contraction at a time only where that slice is at least this long
// (the LM head's Wᵀ, contracted over the vocabulary): each slice is one more pass over C
constexpr int64_t kMinPanelK = 1024;

}  // namespace

#if defined(__x86_64__)
namespace {
// oneDNN's ISA values are sets of feature bits, not a ranking (AVX2-VNNI's number is above AMX's): a level is
// reached when all of its bits are present
bool onednnReaches(dnnl::cpu_isa level) {
  const auto have = static_cast<unsigned>(dnnl::get_effective_cpu_isa()), want = static_cast<unsigned>(level);
  return (have & want) == want;
}
}  // namespace
#endif

// oneDNN runs bf16 matmuls itself where the CPU has bf16 dot products (AVX512-BF16, AMX); elsewhere (AVX2,
// AVX-512 without BF16, arm64 here) bf16 operands are widened to f32 first. oneDNN can emulate bf16 on plain
// AVX-512, but that is the slower choice: 75 tokens/s against 207 for f32 in a SmolLM2 LoRA step (Xeon, 2 cores).
bool onednnHasBf16() {
#if defined(__x86_64__)
  static const bool has = onednnReaches(dnnl::cpu_isa::avx512_core_bf16);
#else
  static const bool has = false;
#endif
  return has;
}

#if defined(__x86_64__)
const char* onednnIsaName() {
  if (onednnReaches(dnnl::cpu_isa::avx512_core_amx)) return "avx512_core_amx";
  if (onednnReaches(dnnl::cpu_isa::avx512_core_bf16)) return "avx512_core_bf16";
  if (onednnReaches(dnnl::cpu_isa::avx512_core)) return "avx512_core";
  if (onednnReaches(dnnl::cpu_isa::avx2)) return "avx2";
  return "other";
}
#endif

namespace {
float* widened(int slot, const void* src, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  float* out = scratch(slot, static_cast<size_t>(n));
  toF32(h, out, n);
  return out;
}
}  // namespace

void gemm(const void* A, const void* B, float* C, int64_t M, int64_t N, int64_t K, bool transA, bool transB,
          bool accumulate, const float* bias, DType dtype);

// C (+)= op(a) · op(B) with a in f32 and B in bf16 widened to f32; a large B goes a panel of its rows at a time.
static void gemmWideB(const float* a, const uint16_t* b, float* C, int64_t M, int64_t N, int64_t K, bool transA,
                      bool transB, bool accumulate, const float* bias) {
  if (K * N <= kWidePanelFloats || transA) {
    gemm(a, widened(kSlotWideB, b, K * N), C, M, N, K, transA, transB, accumulate, bias, F32);
    return;
  }
  if (transB) {
    // B [N, K]: a panel of B's rows gives a panel of C's columns, computed apart and copied in
    const int64_t P = std::max<int64_t>(1, kWidePanelFloats / K);
    float* part = scratch(kSlotWidePanel, static_cast<size_t>(M * std::min(P, N)));
    for (int64_t n0 = 0; n0 < N; n0 += P) {
      const int64_t p = std::min(P, N - n0);
      if (accumulate)
        for (int64_t m = 0; m < M; m++) std::memcpy(part + m * p, C + m * N + n0, static_cast<size_t>(p) * 4);
      gemm(a, widened(kSlotWideB, b + n0 * K, p * K), part, M, p, K, false, true, accumulate, bias ? bias + n0 : nullptr,
           F32);
      for (int64_t m = 0; m < M; m++) std::memcpy(C + m * N + n0, part + m * p, static_cast<size_t>(p) * 4);
    }
    return;
  }
  // B [K, N]: a panel of B's rows is a slice of the contraction, against the same columns of A
  const int64_t P = std::max<int64_t>(1, kWidePanelFloats / N);
  float* aPart = scratch(kSlotWidePanel, static_cast<size_t>(M * std::min(P, K)));
  for (int64_t k0 = 0; k0 < K; k0 += P) {
    const int64_t p = std::min(P, K - k0);
    for (int64_t m = 0; m < M; m++) std::memcpy(aPart + m * p, a + m * K + k0, static_cast<size_t>(p) * 4);
    gemm(aPart, widened(kSlotWideB, b + k0 * N, p * N), C, M, N, p, false, false, accumulate || k0 > 0,
         k0 == 0 ? bias : nullptr, F32);
  }
}

// A bf16 product on widened f32 operands.
static void gemmWidened(const void* A, const void* B, float* C, int64_t M, int64_t N, int64_t K, bool transA,
                        bool transB, bool accumulate, const float* bias) {
  const auto* a = static_cast<const uint16_t*>(A);
  const auto* b = static_cast<const uint16_t*>(B);
  if (!transA || M * K <= kWidePanelFloats || K < 2 * kMinPanelK) {
    gemmWideB(widened(kSlotWideA, a, M * K), b, C, M, N, K, transA, transB, accumulate, bias);
    return;
  }
  // A [K, M], a weight: a panel of its rows is a slice of the contraction, against the same slice of B
  const int64_t P = std::max(kMinPanelK, kWidePanelFloats / M);
  for (int64_t k0 = 0; k0 < K; k0 += P) {
    const int64_t p = std::min(P, K - k0);
    float* bPanel = scratch(kSlotWideB, static_cast<size_t>(N * p));
    if (transB)  // B [N, K]: the slice is a block of columns
      for (int64_t n = 0; n < N; n++) toF32(b + n * K + k0, bPanel + n * p, p);
    else
      toF32(b + k0 * N, bPanel, p * N);
    gemm(widened(kSlotWideA, a + k0 * M, p * M), bPanel, C, M, N, p, true, transB, accumulate || k0 > 0,
         k0 == 0 ? bias : nullptr, F32);
  }
}

// An f32 A against a bf16 B. Decoding's few rows go to their kernel as they are; where bf16 is widened anyway (no
// bf16 dot products) only B is widened: an f32 activation needs no round trip through bf16. Elsewhere A is rounded
// to bf16 as a bf16 product reads it.
static void gemmF32Bf16(const float* A, const uint16_t* B, float* C, int64_t M, int64_t N, int64_t K, bool transA,
                        bool transB, bool accumulate, const float* bias) {
  if (M == 0 || N == 0 || K == 0) {  // nothing to read: gemm settles C alone
    gemm(A, B, C, M, N, K, transA, transB, accumulate, bias, F32);
    return;
  }
  if (!transA && transB && M <= kGemvMaxRows) {
    kernels().gemvF32Bf16(A, B, C, M, N, K, accumulate, bias);
    return;
  }
  if (!onednnHasBf16()) {
    gemmWideB(A, B, C, M, N, K, transA, transB, accumulate, bias);
    return;
  }
  auto* a = reinterpret_cast<uint16_t*>(scratch(kSlotRoundA, static_cast<size_t>(M * K + 1) / 2));
  toBf16(A, a, M * K);
  gemm(a, B, C, M, N, K, transA, transB, accumulate, bias, BF16);
}

// C[M, N] through a primitive for `bucketRows(M)` rows: A and C go through zero-padded copies.
static void gemmPadded(const void* A, const void* B, float* C, int64_t M, int64_t Mb, int64_t N, int64_t K, bool transB,
                       bool accumulate, const float* bias, DType dtype) {
  size_t el = dtype == BF16 ? 2 : 4;
  auto* a = reinterpret_cast<uint8_t*>(scratch(kSlotPadA, (static_cast<size_t>(Mb * K) * el + 3) / 4));
  std::memcpy(a, A, static_cast<size_t>(M * K) * el);
  std::memset(a + static_cast<size_t>(M * K) * el, 0, static_cast<size_t>((Mb - M) * K) * el);
  float* c = scratch(kSlotPadC, static_cast<size_t>(Mb * N));
  if (accumulate) std::memcpy(c, C, static_cast<size_t>(M * N) * 4);
  gemm(a, B, c, Mb, N, K, false, transB, accumulate, bias, dtype);
  std::memcpy(C, c, static_cast<size_t>(M * N) * 4);
}

void gemm(const void* A, const void* B, float* C, int64_t M, int64_t N, int64_t K, bool transA, bool transB,
          bool accumulate, const float* bias, DType dtype) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate) std::memset(C, 0, static_cast<size_t>(M * N) * 4);
    return;
  }
  if (!transA && transB && M <= kGemvMaxRows) {
    // decoding: a few rows against a weight matrix is a stream over the weight (gemv_kernels.h)
    if (dtype == BF16) kernels().gemvBf16(static_cast<const uint16_t*>(A), static_cast<const uint16_t*>(B), C, M, N, K, accumulate, bias);
    else kernels().gemvF32(static_cast<const float*>(A), static_cast<const float*>(B), C, M, N, K, accumulate, bias);
    return;
  }
  if (dtype == BF16 && !onednnHasBf16()) {
    gemmWidened(A, B, C, M, N, K, transA, transB, accumulate, bias);
    return;
  }
  if (dtype == F32 && !transA && !transB && !bias && N >= 64 && K >= 64 && (M + 5) / 6 >= 8 * omp_get_max_threads() &&
      kernels().packedGemmF32) {
    // the input gradient's form, on our packed tiles where they beat oneDNN (packed_gemm_kernels.h). They split rows
    // among the threads in groups of 6, so a product takes them only with 8 groups a thread; LoRA's rank-wide
    // products (a few columns, or a few steps of the contraction) and the bias gradient's one row stay with oneDNN
    kernels().packedGemmF32(static_cast<const float*>(A), static_cast<const float*>(B), C, M, N, K, accumulate);
    return;
  }
  if (!transA && bucketRows(M) != M) {
    gemmPadded(A, B, C, M, bucketRows(M), N, K, transB, accumulate, bias, dtype);
    return;
  }
  Cached& c = primitive(M, N, K, transA, transB, accumulate, bias != nullptr, dtype);
  memory a(c.a, engine(), const_cast<void*>(A));
  memory b(c.b, engine(), const_cast<void*>(B));
  memory out(c.c, engine(), C);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, out}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(c.bias, engine(), const_cast<float*>(bias)));
  SignalShield shield;  // oneDNN's generated kernels must not take a signal (signal_shield.h)
  c.prim.execute(stream(), args);
  stream().wait();
}

void linearRows(const float* x, const void* w, bool bf16Weight, const float* bias, float* y, int64_t M, int64_t N,
                int64_t K) {
  if (bf16Weight) gemmF32Bf16(x, static_cast<const uint16_t*>(w), y, M, N, K, false, true, false, bias);
  else gemm(x, w, y, M, N, K, false, true, false, bias, F32);
}

// matmul(A, B, C, M, N, K, transA, transB, accumulate, bias|null, dtype): dtype 0 f32, 1 bf16, 2 A f32 and B bf16
static Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "matmul");
  int64_t M = a.size(3), N = a.size(4), K = a.size(5), dt = a.size(10);
  constexpr int64_t kF32Bf16 = 2;
  a.check(dt == F32 || dt == BF16 || dt == kF32Bf16, "dtype must be 0 (f32), 1 (bf16) or 2 (f32 A, bf16 B)");
  int64_t mk = Args::product({M, K}), kn = Args::product({K, N}), mn = Args::product({M, N});
  const void* A = dt == BF16 ? static_cast<const void*>(a.buffer<uint16_t>(0, mk, "A")) : a.buffer<float>(0, mk, "A");
  const void* B = dt != F32 ? static_cast<const void*>(a.buffer<uint16_t>(1, kn, "B")) : a.buffer<float>(1, kn, "B");
  float* C = a.buffer<float>(2, mn, "C");
  const float* bias = a.buffer<float>(9, N, "bias", true);
  if (!a.ok()) return env.Undefined();
  try {
    const bool tA = boolean(info[6]), tB = boolean(info[7]), acc = boolean(info[8]);
    if (dt == kF32Bf16)
      gemmF32Bf16(static_cast<const float*>(A), static_cast<const uint16_t*>(B), C, M, N, K, tA, tB, acc, bias);
    else gemm(A, B, C, M, N, K, tA, tB, acc, bias, dt == BF16 ? BF16 : F32);
  } catch (const dnnl::error& e) {
    Napi::Error::New(env, std::string("oneDNN matmul failed: ") + e.what()).ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

void registerMatmul(Napi::Env env, Napi::Object exports) { exports.Set("matmul", Napi::Function::New(env, Matmul)); }

}  // namespace lmf
