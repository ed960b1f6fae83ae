// AVX-512 and AVX512-BF16 emulated for the kernel test on CPUs without them (scripts/test-kernels.sh force-includes
// this header when it compiles those paths for such a CPU): SIMDe's portable implementations stand in for the
// intrinsics under their own names, and the kernels' `#if defined(__AVX512F__)` branches are selected, so the
// AVX-512 code itself is tested, one element at a time, on an AVX2 machine. Not used by the addon.
#pragma once
// GCC's own intrinsics first, while __AVX512F__ is still undefined (their declarations depend on it)
#include <immintrin.h>
#include <cstdint>

#define __AVX512F__ 1
#ifdef LMF_EMULATE_AVX512BF16
#define __AVX512BF16__ 1
#endif
#define SIMDE_X86_AVX512F_NO_NATIVE
#define SIMDE_X86_AVX512BW_NO_NATIVE
#define SIMDE_X86_AVX512VL_NO_NATIVE
#define SIMDE_X86_AVX512DQ_NO_NATIVE
#define SIMDE_X86_AVX512CD_NO_NATIVE
#define SIMDE_X86_AVX512BF16_NO_NATIVE
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

// four instructions SIMDe 0.7.4 (Debian 12) lacks, element by element:
// 16 bytes (signed or unsigned) widened to 32-bit integers (two instructions)
template <typename Byte>
inline simde__m512i lmfEmulatedWidenBytes(simde__m128i a) {
  Byte in[16];
  int32_t out[16];
  simde_mm_storeu_si128(reinterpret_cast<simde__m128i*>(in), a);
  for (int i = 0; i < 16; i++) out[i] = in[i];
  return simde_mm512_loadu_si512(out);
}
inline simde__m512 lmfEmulatedCvtepi32Ps(simde__m512i a) {
  int32_t in[16];
  float out[16];
  simde_mm512_storeu_si512(in, a);
  for (int i = 0; i < 16; i++) out[i] = static_cast<float>(in[i]);
  return simde_mm512_loadu_ps(out);
}
// lanes of four floats: the low two chosen from a, the high two from b, two bits of imm each
inline simde__m512 lmfEmulatedShuffleF32x4(simde__m512 a, simde__m512 b, int imm) {
  float x[16], y[16], out[16];
  simde_mm512_storeu_ps(x, a);
  simde_mm512_storeu_ps(y, b);
  for (int lane = 0; lane < 4; lane++) {
    const float* from = lane < 2 ? x : y;
    const int pick = (imm >> (2 * lane)) & 3;
    for (int i = 0; i < 4; i++) out[4 * lane + i] = from[4 * pick + i];
  }
  return simde_mm512_loadu_ps(out);
}
// (GCC defines some intrinsics as macros when not optimising)
#undef _mm512_cvtepi8_epi32
#undef _mm512_cvtepu8_epi32
#undef _mm512_cvtepi32_ps
#undef _mm512_shuffle_f32x4
#define _mm512_cvtepi8_epi32(a) lmfEmulatedWidenBytes<int8_t>(a)
#define _mm512_cvtepu8_epi32(a) lmfEmulatedWidenBytes<uint8_t>(a)
#define _mm512_cvtepi32_ps(a) lmfEmulatedCvtepi32Ps(a)
#define _mm512_shuffle_f32x4(a, b, imm) lmfEmulatedShuffleF32x4(a, b, imm)
