// llama.cpp's q4_K, q5_K, q6_K, q5_0 and q5_1 blocks for GGUF export (src/export/kquants.ts describes the
// formats), with the quantizers of ggml's reference implementation as it publishes them: a weighted least-squares
// sweep of candidate scales per sub-block, then 6- or 8-bit scales per super-block. Blocks are independent: they
// are shared among the OpenMP threads.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include "common.h"

namespace lmf {

namespace {

constexpr int QK_K = 256;

// round half up (as Math.round), in a form the compiler vectorises (lround is a library call)
inline int nearest(float x) { return static_cast<int>(std::floor(x + 0.5f)); }

// f32 -> IEEE half, round to nearest even (as src/tensor/dtype.ts's f32ToF16Bits)
uint16_t toHalf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000;
  const int32_t exp = static_cast<int32_t>((u >> 23) & 0xff);
  uint32_t mant = u & 0x7fffff;
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00 | (mant ? 0x200 : 0));
  int32_t e = exp - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    const int shift = 14 - e;
    uint32_t half = mant >> shift;
    const uint32_t rest = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rest > mid || (rest == mid && (half & 1))) half++;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++;
  return static_cast<uint16_t>(sign | half);
}

float fromHalf(uint16_t h) {
  const float sign = h & 0x8000 ? -1.0f : 1.0f;
  const int exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  if (exp == 0) return sign * std::ldexp(static_cast<float>(frac), -24);
  if (exp == 31) return frac ? NAN : sign * INFINITY;
  return sign * std::ldexp(1.0f + frac / 1024.0f, exp - 15);
}

void putHalf(uint8_t* at, float v) {
  const uint16_t h = toHalf(v);
  at[0] = static_cast<uint8_t>(h & 0xff);
  at[1] = static_cast<uint8_t>(h >> 8);
}

// x ≈ scale·L + min with L in 0..nmax and min ≤ 0, fitted by weighted least squares over a sweep of candidate
// inverse scales (nmax + rmin + 0.1·step) / range for step 0..steps (ggml's make_qkx2_quants); writes the codes
// into L, returns the scale and sets *min.
float fitAffine(const float* x, const float* w, int n, int nmax, float rmin, int steps, uint8_t* L, float* minOut) {
  float lo = x[0], hi = x[0], sumW = 0, sumX = 0;
  for (int i = 0; i < n; i++) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    sumW += w[i];
    sumX += w[i] * x[i];
  }
  if (lo > 0) lo = 0;
  if (hi == lo) {
    std::fill(L, L + n, 0);
    *minOut = lo;
    return 0;
  }
  auto codes = [&](float iscale, uint8_t* into) {
    for (int i = 0; i < n; i++) into[i] = static_cast<uint8_t>(std::clamp(nearest(iscale * (x[i] - lo)), 0, nmax));
  };
  auto error = [&](float scale, float min, const uint8_t* l) {
    float e = 0;
    for (int i = 0; i < n; i++) {
      const float d = scale * l[i] + min - x[i];
      e += w[i] * d * d;
    }
    return e;
  };
  float scale = (hi - lo) / nmax, min = lo;
  codes(nmax / (hi - lo), L);
  float best = error(scale, min, L);
  uint8_t trial[32];
  for (int step = 0; step <= steps; step++) {
    codes((rmin + 0.1f * step + nmax) / (hi - lo), trial);
    float sumL = 0, sumL2 = 0, sumXL = 0;
    for (int i = 0; i < n; i++) {
      sumL += w[i] * trial[i];
      sumL2 += w[i] * trial[i] * trial[i];
      sumXL += w[i] * trial[i] * x[i];
    }
    const float D = sumW * sumL2 - sumL * sumL;
    if (D <= 0) continue;
    float s = (sumW * sumXL - sumX * sumL) / D, m = (sumL2 * sumX - sumL * sumXL) / D;
    if (m > 0) {
      m = 0;
      s = sumXL / sumL2;
    }
    const float e = error(s, m, trial);
    if (e < best) {
      std::memcpy(L, trial, n);
      best = e;
      scale = s;
      min = m;
    }
  }
  *minOut = min;
  return scale;
}

// The part q4_K and q5_K share: per sub-block of 32 an affine fit (codes 0..nmax) weighted by |x| plus the
// sub-block's RMS, the 8 scales and 8 mins as 6-bit fractions of the largest (packed in out[4..16), the two f16
// super-scales in out[0..4)), then the codes again against the scales as stored, into L.
void affineSuperBlock(const float* x, uint8_t* out, int nmax, float rmin, int steps, uint8_t* L) {
  float w[32], scales[8], mins[8];
  for (int j = 0; j < 8; j++) {
    const float* sub = x + 32 * j;
    float sum2 = 0;
    for (int i = 0; i < 32; i++) sum2 += sub[i] * sub[i];
    const float av = std::sqrt(sum2 / 32);
    for (int i = 0; i < 32; i++) w[i] = av + std::fabs(sub[i]);
    float min;
    scales[j] = fitAffine(sub, w, 32, nmax, rmin, steps, L + 32 * j, &min);
    mins[j] = -min;
  }
  const float maxScale = *std::max_element(scales, scales + 8), maxMin = *std::max_element(mins, mins + 8);
  const float invScale = maxScale > 0 ? 63 / maxScale : 0, invMin = maxMin > 0 ? 63 / maxMin : 0;
  uint8_t* packed = out + 4;
  std::memset(packed, 0, 12);
  uint8_t sc[8], mn[8];
  for (int j = 0; j < 8; j++) {
    sc[j] = static_cast<uint8_t>(std::min(63, nearest(invScale * scales[j])));
    mn[j] = static_cast<uint8_t>(std::min(63, nearest(invMin * mins[j])));
    if (j < 4) {
      packed[j] = sc[j];
      packed[j + 4] = mn[j];
    } else {
      packed[j + 4] = static_cast<uint8_t>((sc[j] & 0xf) | ((mn[j] & 0xf) << 4));
      packed[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
      packed[j] |= static_cast<uint8_t>((mn[j] >> 4) << 6);
    }
  }
  putHalf(out, maxScale / 63);
  putHalf(out + 2, maxMin / 63);
  const float d = fromHalf(toHalf(maxScale / 63)), dmin = fromHalf(toHalf(maxMin / 63));
  for (int j = 0; j < 8; j++) {
    const float d1 = d * sc[j];
    if (!d1) continue;
    const float m1 = dmin * mn[j];
    for (int i = 32 * j; i < 32 * j + 32; i++)
      L[i] = static_cast<uint8_t>(std::clamp(nearest((x[i] + m1) / d1), 0, nmax));
  }
}

void q4kBlock(const float* x, uint8_t* out) {
  uint8_t L[QK_K];
  affineSuperBlock(x, out, 15, -1.0f, 20, L);
  // each 32 bytes hold 64 values: the first 32 in the low nibbles, the next 32 in the high ones
  uint8_t* qs = out + 16;
  for (int span = 0; span < 4; span++)
    for (int l = 0; l < 32; l++) qs[32 * span + l] = static_cast<uint8_t>(L[64 * span + l] | (L[64 * span + 32 + l] << 4));
}

// q5_K: q4_K's layout with 5-bit codes (ggml's sweep for them is narrower: 16 candidates from nmax − 0.5)
void q5kBlock(const float* x, uint8_t* out) {
  uint8_t L[QK_K];
  affineSuperBlock(x, out, 31, -0.5f, 15, L);
  // low nibbles as q4_K's (in out[48..176)); the fifth bits in qh = out[16..48): value 64·span + l sets bit
  // 2·span of byte l, value 64·span + 32 + l bit 2·span + 1
  uint8_t *qh = out + 16, *qs = out + 48;
  std::memset(qh, 0, 32);
  for (int span = 0; span < 4; span++)
    for (int l = 0; l < 32; l++) {
      const uint8_t lo = L[64 * span + l], hi = L[64 * span + 32 + l];
      qs[32 * span + l] = static_cast<uint8_t>((lo & 0xf) | ((hi & 0xf) << 4));
      qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * span)) | ((hi >> 4) << (2 * span + 1)));
    }
}

// x ≈ scale·L with L in −nmax..nmax−1, weighted by x² (ggml's make_qx_quants); writes L, returns the scale.
float fitSymmetric(const float* x, int n, int nmax, int8_t* L) {
  float extreme = 0;
  for (int i = 0; i < n; i++)
    if (std::fabs(x[i]) > std::fabs(extreme)) extreme = x[i];
  if (!extreme) {
    std::fill(L, L + n, 0);
    return 0;
  }
  auto fit = [&](float iscale, int8_t* into, float* sumLX, float* sumL2) {
    *sumLX = 0;
    *sumL2 = 0;
    for (int i = 0; i < n; i++) {
      const int l = std::clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
      into[i] = static_cast<int8_t>(l);
      const float w = x[i] * x[i];
      *sumLX += w * x[i] * l;
      *sumL2 += w * l * l;
    }
  };
  float sumLX, sumL2;
  fit(-nmax / extreme, L, &sumLX, &sumL2);
  float scale = sumL2 ? sumLX / sumL2 : 0, best = scale * sumLX;
  int8_t trial[16];
  for (int step = -9; step <= 9; step++) {
    if (step == 0) continue;
    float lx, l2;
    fit(-(nmax + 0.1f * step) / extreme, trial, &lx, &l2);
    if (l2 > 0 && lx * lx > best * l2) {
      std::memcpy(L, trial, n);
      scale = lx / l2;
      best = scale * lx;
    }
  }
  return scale;
}

void q6kBlock(const float* x, uint8_t* out) {
  int8_t L[QK_K];
  float scales[16], maxScale = 0;
  for (int j = 0; j < 16; j++) {
    scales[j] = fitSymmetric(x + 16 * j, 16, 32, L + 16 * j);
    if (std::fabs(scales[j]) > std::fabs(maxScale)) maxScale = scales[j];
  }
  uint8_t *ql = out, *qh = out + 128;
  int8_t* sc = reinterpret_cast<int8_t*>(out + 192);
  uint8_t codes[QK_K];
  std::fill(codes, codes + QK_K, 32);
  std::memset(sc, 0, 16);
  putHalf(out + 208, 0);
  if (maxScale) {
    const float iscale = -128 / maxScale;
    putHalf(out + 208, 1 / iscale);
    const float d = fromHalf(toHalf(1 / iscale));
    for (int j = 0; j < 16; j++) {
      sc[j] = static_cast<int8_t>(std::min(127, nearest(iscale * scales[j])));
      const float dj = d * sc[j];
      if (!dj) continue;
      for (int i = 16 * j; i < 16 * j + 16; i++)
        codes[i] = static_cast<uint8_t>(std::clamp(nearest(x[i] / dj), -32, 31) + 32);
    }
  }
  // per 128 values: low nibbles of l and l + 64 share byte l, of l + 32 and l + 96 byte l + 32; the high two
  // bits of l, l + 32, l + 64, l + 96 share qh byte l
  for (int half = 0; half < 2; half++) {
    const uint8_t* q = codes + 128 * half;
    for (int l = 0; l < 32; l++) {
      ql[64 * half + l] = static_cast<uint8_t>((q[l] & 0xf) | ((q[l + 64] & 0xf) << 4));
      ql[64 * half + l + 32] = static_cast<uint8_t>((q[l + 32] & 0xf) | ((q[l + 96] & 0xf) << 4));
      qh[32 * half + l] =
          static_cast<uint8_t>((q[l] >> 4) | ((q[l + 32] >> 4) << 2) | ((q[l + 64] >> 4) << 4) | ((q[l + 96] >> 4) << 6));
    }
  }
}

// q5_0: d = the block's value of largest magnitude over −16; codes rounded half up, clamped at 31
void q50Block(const float* x, uint8_t* out) {
  float extreme = 0;
  for (int i = 0; i < 32; i++)
    if (std::fabs(x[i]) > std::fabs(extreme)) extreme = x[i];
  const float d = extreme / -16, inv = d ? 1 / d : 0;
  putHalf(out, d);
  uint32_t high = 0;
  for (int j = 0; j < 16; j++) {
    const int lo = std::min(31, static_cast<int>(x[j] * inv + 16.5f)), hi = std::min(31, static_cast<int>(x[j + 16] * inv + 16.5f));
    out[6 + j] = static_cast<uint8_t>((lo & 0xf) | ((hi & 0xf) << 4));
    high |= (static_cast<uint32_t>(lo >> 4) << j) | (static_cast<uint32_t>(hi >> 4) << (j + 16));
  }
  std::memcpy(out + 2, &high, 4);  // little-endian, as ggml reads it on the machines it runs on
}

// q5_1: blocks of 32, value = d·q + m with m the block's minimum, d its range over 31; codes rounded half up
void q51Block(const float* x, uint8_t* out) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < 32; i++) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  const float d = (hi - lo) / 31, inv = d ? 1 / d : 0;
  putHalf(out, d);
  putHalf(out + 2, lo);
  uint32_t high = 0;
  for (int j = 0; j < 16; j++) {
    const int a = static_cast<int>((x[j] - lo) * inv + 0.5f), b = static_cast<int>((x[j + 16] - lo) * inv + 0.5f);
    out[8 + j] = static_cast<uint8_t>((a & 0xf) | ((b & 0xf) << 4));
    high |= (static_cast<uint32_t>((a >> 4) & 1) << j) | (static_cast<uint32_t>((b >> 4) & 1) << (j + 16));
  }
  std::memcpy(out + 4, &high, 4);
}

using BlockCoder = void (*)(const float*, uint8_t*);

// quantizeGgml(values, n, type, out): type 0 q4_K, 1 q6_K, 2 q5_0, 3 q5_K, 4 q5_1; n a multiple of the type's block
Napi::Value QuantizeGgml(const Napi::CallbackInfo& info) {
  Args a(info, "quantizeGgml");
  const int64_t n = a.size(1), type = a.size(2);
  static const int values[] = {QK_K, QK_K, 32, QK_K, 32}, bytes[] = {144, 210, 22, 176, 24};
  static const BlockCoder coders[] = {q4kBlock, q6kBlock, q50Block, q5kBlock, q51Block};
  a.check(type >= 0 && type <= 4, "type is 0 (q4_K), 1 (q6_K), 2 (q5_0), 3 (q5_K) or 4 (q5_1)");
  const int64_t t = type >= 0 && type <= 4 ? type : 0;
  a.check(n % values[t] == 0, "n must be whole blocks");
  const float* x = a.buffer<float>(0, n, "values");
  uint8_t* out = a.buffer<uint8_t>(3, n / values[t] * bytes[t], "out");
  if (!a.ok()) return info.Env().Undefined();
  const int64_t blocks = n / values[t];
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; b++) coders[t](x + b * values[t], out + b * bytes[t]);
  return info.Env().Undefined();
}

}  // namespace

void registerGgmlQuants(Napi::Env env, Napi::Object exports) {
  exports.Set("quantizeGgml", Napi::Function::New(env, QuantizeGgml));
}

}  // namespace lmf
