// What the kernels share, without N-API: bf16 conversion, denormal flushing, scratch memory. Included by the
// per-instruction-set kernel headers as well as by the bindings.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <omp.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace lmf {

// Scratch memory that lives between calls, one buffer per slot, grown but never shrunk. Fresh buffers of
// a megabyte or more come from mmap and cost a page fault per 4 KiB on first touch, which once took more
// time than the attention arithmetic itself. Not zeroed. Kernels run one at a time (from the JavaScript
// thread), so a slot is never used by two calls at once; threads inside a kernel use distinct slots.
float* scratch(int slot, size_t floats);

// Element types shared with the JavaScript side (src/tensor/dtype.ts).
enum DType : int { F32 = 0, BF16 = 1 };

// C[M,N] (+)= op(A) · op(B) (+ bias), mostly through oneDNN; throws dnnl::error (see matmul.cc).
void gemm(const void* A, const void* B, float* C, int64_t M, int64_t N, int64_t K, bool transA, bool transB,
          bool accumulate, const float* bias, DType dtype);
// The row counts gemm makes its primitives for: a product of other M rows is computed on zero rows padded up to
// bucketRows(M) (matmul.cc). Callers that lay out their own operands pad to it and skip the copies.
int64_t bucketRows(int64_t M);
// y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias) with f32 rows against an f32 or a bf16 weight, as matmul's dtypes 0 and 2
// compute it (matmul.cc).
void linearRows(const float* x, const void* w, bool bf16Weight, const float* bias, float* y, int64_t M, int64_t N,
                int64_t K);

// internal linkage: each instruction-set translation unit keeps its own compiled copy
namespace {

// bf16 is the upper half of an f32; conversion rounds to nearest even and keeps NaN a NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Flushes denormal inputs and results to zero on this thread while in scope, then restores the mode.
// Softmax tails (exp of very negative scores) multiplied by small values produce denormals, and every
// floating-point operation on a denormal takes a microcode assist: the attention backward ran 2x slower.
// Scoped, because JavaScript's own arithmetic on this thread must keep IEEE semantics.
class FlushDenormals {
 public:
#if defined(__x86_64__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }  // FTZ | DAZ
  ~FlushDenormals() { _mm_setcsr(saved_); }
#elif defined(__aarch64__)
  FlushDenormals() : saved_(__builtin_aarch64_get_fpcr()) { __builtin_aarch64_set_fpcr(saved_ | (1u << 24)); }  // FZ
  ~FlushDenormals() { __builtin_aarch64_set_fpcr(saved_); }
#endif
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned int saved_ = 0;
};

// Runs body(from, to) over 0..n: split among the threads when n > minimum, else as body(0, n) on this thread. Not
// `omp parallel for if (...)`: a region whose condition is false still costs about a microsecond, and the loop
// GCC outlines into it ran 4-10x slower on one thread than the same loop written plainly (SwiGLU over 1,536 values
// 9 vs 2 µs, a scaled add over 20,000 18-30 vs 3 µs); decoding runs hundreds of such small kernels per token.
// Denormals are flushed in every body: GCC's vectorised SwiGLU computes, in every lane, the gate times sigmoid's
// value at exp_approx's clamp (1/(1 + e^88), a denormal constant), and Intel cores take an assist on each such
// product (Ice Lake: 6.9 vs 0.8 ns a value on one thread); AMD's do not, so it showed only there.
template <typename Body>
inline void splitRange(int64_t n, int64_t minimum, Body body) {
  if (n <= minimum) {
    FlushDenormals ftz;
    body(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    FlushDenormals ftz;
    const int64_t threads = omp_get_num_threads(), me = omp_get_thread_num();
    body(n * me / threads, n * (me + 1) / threads);
  }
}

}  // namespace

}  // namespace lmf
