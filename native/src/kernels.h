// The hand-written kernels that exist once per instruction set, and the table that picks one set at load time.
// Plain pointers and sizes: no N-API here. Each set is compiled from the same headers with its own -march
// (native/src/isa/*.cc, binding.gyp), so one binary runs on any x86-64-v3 CPU and uses AVX-512 where it exists.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace lmf {

// The block scales (absmax) of a 4-bit weight: f32 values, or bitsandbytes' double quantization of them, an 8-bit
// code per block read as f32(map[code] · nested[block / nestedBlocksize]) + offset with each step rounded to f32
// as bitsandbytes computes it. Kernels expand the scales of the rows they read, so no f32 copy of all exists.
struct BlockScales {
  const float* values = nullptr;
  const uint8_t* codes = nullptr;
  const float* nested = nullptr;
  int64_t nestedBlocksize = 1;
  float offset = 0.0f;
  const float* map = nullptr;

  // scales of blocks block0 .. block0 + count into out. The products are stored (rounded) before the sums, in
  // two passes: a fused multiply-add, which -ffp-contract=fast makes of one expression, would round once.
  void expand(int64_t block0, int64_t count, float* out) const {
    if (values) {
      std::memcpy(out, values + block0, static_cast<size_t>(count) * sizeof(float));
      return;
    }
    // a nested scale serves nestedBlocksize blocks in a row: one division per run of them, not one per block
    for (int64_t j = 0; j < count;) {
      const int64_t group = (block0 + j) / nestedBlocksize;
      const int64_t end = std::min(count, (group + 1) * nestedBlocksize - block0);
      const float scale = nested[group];
      for (; j < end; j++) out[j] = map[codes[block0 + j]] * scale;
    }
    for (int64_t j = 0; j < count; j++) out[j] += offset;
  }
};

constexpr int64_t kGemvMaxRows = 4;

// Sizes of a causal grouped-query attention (attention_kernels.h): q [B, Tq, H, D], k and v [B, Tk, KV, D]; query i
// stands at key position i + qOffset; segment ids (or null) keep packed sequences apart.
struct AttentionShape {
  int64_t B, Tq, Tk, H, KV, D, qOffset;
  const int32_t* segQ;
  const int32_t* segK;
  float scale;
  // keys further back than this from the query are hidden (sliding-window layers); 0 = no window
  int64_t window = 0;
  // scores pass through softcap * tanh(score / softcap) before the softmax (Gemma 2); 0 = none
  float softcap = 0.0f;
  // the products of a prompt's or a training step's attention (not decoding's few queries) on operands rounded to bf16,
  // accumulated in f32, where the path has bf16 dot products and D is a multiple of 16; elsewhere f32
  bool bf16 = false;
};

// The gated delta rule of Qwen3.5's Gated DeltaNet (delta_rule_kernels.h): B rows of T tokens, Hk key heads of dk
// and Hv value heads of dv (Hv a multiple of Hk). Training runs it in chunks of kDeltaChunk tokens and keeps the
// state entering each chunk, [B, Hv, chunks, dk, dv], for the backward pass.
constexpr int64_t kDeltaChunk = 64;
struct DeltaShape {
  int64_t B, T, Hk, Hv, dk, dv;
};
// Its inputs: convolved q|k|v rows [B*T, 2*Hk*dk + Hv*dv], the raw beta and decay projections b, a [B*T, Hv],
// A_log and dt_bias [Hv], and segment ids [B*T] (or null): a token whose id differs from the previous one's
// starts from a zero state.
struct DeltaInputs {
  const float* qkv;
  const float* b;
  const float* a;
  const float* Alog;
  const float* dtBias;
  const int32_t* seg;
};

#define LMF_DECLARE_KERNELS(ns)                                                                                    \
  namespace ns {                                                                                                   \
  void gemvF32(const float* A, const float* W, float* C, int64_t M, int64_t N, int64_t K, bool accumulate,          \
               const float* bias);                                                                                 \
  void gemvBf16(const uint16_t* A, const uint16_t* W, float* C, int64_t M, int64_t N, int64_t K, bool accumulate,   \
                const float* bias);                                                                                \
  void gemvF32Bf16(const float* A, const uint16_t* W, float* C, int64_t M, int64_t N, int64_t K, bool accumulate,   \
                   const float* bias);                                                                             \
  void attentionForward(const float* q, const float* k, const float* v, float* out, float* lse,                    \
                        const AttentionShape& shape);                                                              \
  void attentionBackward(const float* q, const float* k, const float* v, const float* out, const float* dout,       \
                         const float* lse, float* dq, float* dk, float* dv, const AttentionShape& shape);           \
  void gemv4bit(const float* A, const uint8_t* packed, const BlockScales& absmax, const float* table,                \
                int64_t blocksize, float* C, int64_t M, int64_t N, int64_t K, bool accumulate, const float* bias);  \
  void gemvInt8(const float* A, const int8_t* codes, const float* scales, float* C, int64_t M, int64_t N, int64_t K, \
                bool accumulate, const float* bias);                                                               \
  void deltaRecurrentForward(const DeltaShape& s, const DeltaInputs& in, float* out, const float* initState,        \
                             float* finalState);                                                                   \
  void deltaChunkedForward(const DeltaShape& s, const DeltaInputs& in, float* out, float* checkpoints,              \
                           const float* initState, float* finalState);                                             \
  void deltaChunkedBackward(const DeltaShape& s, const DeltaInputs& in, const float* dout, const float* checkpoints, \
                            float* dqkv, float* db, float* da, float* dAlog, float* ddtBias);                      \
  double peakGflops(bool bf16);                                                                                    \
  void packedGemmF32(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, bool accumulate);  \
  }
#if defined(__x86_64__)
LMF_DECLARE_KERNELS(avx2)
LMF_DECLARE_KERNELS(avx512)
LMF_DECLARE_KERNELS(avx512bf16)
#elif defined(__aarch64__)
LMF_DECLARE_KERNELS(neon)
LMF_DECLARE_KERNELS(neonbf16)
#endif
#undef LMF_DECLARE_KERNELS

struct KernelTable {
  // position among this architecture's paths, slowest first (x86-64: avx2, avx512, avx512bf16; arm64: neon, neonbf16)
  int level;
  const char* name;
  // C[M, N] (+)= A[M, :] · W[N, :] (+ bias) for M <= kGemvMaxRows
  void (*gemvF32)(const float*, const float*, float*, int64_t, int64_t, int64_t, bool, const float*);
  void (*gemvBf16)(const uint16_t*, const uint16_t*, float*, int64_t, int64_t, int64_t, bool, const float*);
  // the same with f32 rows against the bf16 weight
  void (*gemvF32Bf16)(const float*, const uint16_t*, float*, int64_t, int64_t, int64_t, bool, const float*);
  // C[M, N] (+)= A[M, :] · W[N, :] (+ bias) for M <= kGemvMaxRows, W in bitsandbytes' 4-bit codes with one absmax
  // per block of `blocksize` (a multiple of 32 that divides K), f32 or double-quantized
  void (*gemv4bit)(const float*, const uint8_t*, const BlockScales&, const float*, int64_t, float*, int64_t, int64_t,
                   int64_t, bool, const float*);
  // the same with W in 8-bit codes, a row's values (code · scale[n]) / 127 (bitsandbytes' int8 rows)
  void (*gemvInt8)(const float*, const int8_t*, const float*, float*, int64_t, int64_t, int64_t, bool, const float*);
  void (*attentionForward)(const float*, const float*, const float*, float*, float*, const AttentionShape&);
  void (*attentionBackward)(const float*, const float*, const float*, const float*, const float*, const float*, float*,
                            float*, float*, const AttentionShape&);
  // the gated delta rule, out [B*T, Hv*dv]: token by token (decoding), or in chunks, optionally keeping checkpoints
  // (training, prompts); initState / finalState [B, Hv, dk, dv] or null (a zero start / not kept)
  void (*deltaRecurrentForward)(const DeltaShape&, const DeltaInputs&, float*, const float*, float*);
  void (*deltaChunkedForward)(const DeltaShape&, const DeltaInputs&, float*, float*, const float*, float*);
  // gradients of a chunked forward pass from a zero state: dqkv, db, da written; dAlog, ddtBias [Hv] accumulated
  void (*deltaChunkedBackward)(const DeltaShape&, const DeltaInputs&, const float*, const float*, float*, float*, float*,
                               float*, float*);
  // the measured GFLOP/s of f32 FMAs (bf16 = false) or bf16 dot products on every thread; 0 = no bf16 dot product
  double (*peakGflops)(bool bf16);
  // C[M, N] (+)= A[M, K] · B[K, N], all f32 row-major (packed_gemm_kernels.h), on the paths where it measured faster
  // than oneDNN (the AVX-512 ones); null elsewhere, where gemm keeps oneDNN
  void (*packedGemmF32)(const float*, const float*, float*, int64_t, int64_t, int64_t, bool);
};

// Every path of this architecture, slowest first, and how many this CPU (and its operating system) supports.
const KernelTable* kernelPaths(int* count);
int supportedLevels();
// Chooses the path: LMF_ISA (a path's name) when set, else the best supported. Returns an error message (and
// keeps the current path) when LMF_ISA is unknown or names a path this CPU lacks.
std::string selectIsa(const char* requested);
// The kernels of the chosen path.
const KernelTable& kernels();

}  // namespace lmf
