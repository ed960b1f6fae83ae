// bitsandbytes' blockwise 4-bit quantizer (src/models/quant/bnb.ts describes the formats), and dequantising rows
// of a quantized weight into f32 or bf16 for the quantized projections' matmuls: a panel of rows at a time, so no
// full-precision copy of a weight exists.
// Each value is f32(table[code] * absmax[block]) (4-bit) or f32(f32(code * scale[row]) * f32(1/127)) (int8), the
// same arithmetic as bnb's dequantisation; bf16 output rounds that f32 to nearest even.
#include <algorithm>
#include <cmath>
#include <cstring>
#include "common.h"
#include "kernel_support.h"
#include "kernels.h"

namespace lmf {

namespace {

void store(float v, float* f32Out, uint16_t* bf16Out, int64_t i) {
  if (bf16Out)
    bf16Out[i] = f32_to_bf16(v);
  else
    f32Out[i] = v;
}

}  // namespace

namespace {

// bnb's NF4 thresholds: the f32 midpoints between neighbouring codes (a value on one goes to the lower code)
struct Nf4Midpoints {
  float v[15];
  explicit Nf4Midpoints(const float* table) {
    for (int i = 0; i < 15; i++) v[i] = (table[i] + table[i + 1]) / 2.0f;
  }
};

// the number of midpoints below x (a count of comparisons, which vectorises); NaN (an all-zero block's 0 · ∞)
// compares false everywhere: code 0, as on CUDA
inline int nf4Code(float x, const float* mid) {
  int code = 0;
  for (int j = 0; j < 15; j++) code += x > mid[j];
  return code;
}

// bnb's FP4 decision tree (its thresholds are not all exact midpoints): sign in bit 3
int fp4Code(float x) {
  if (x != x) return 0;
  int sign = x < 0 ? 8 : 0;
  float a = std::fabs(x);
  if (a > static_cast<float>(0.29166667)) {
    if (a > static_cast<float>(0.583333)) return (a > static_cast<float>(0.8333333) ? 3 : 2) + sign;
    return (a > static_cast<float>(0.4166667) ? 5 : 4) + sign;
  }
  if (a > static_cast<float>(0.0859375)) return (a > static_cast<float>(0.20833333) ? 7 : 6) + sign;
  return (a > static_cast<float>(0.00260417) ? 1 : 0) + sign;
}

}  // namespace

// quantize4bit(values, valuesBf16, n, fp4, blocksize, nf4Table, packed, absmax): bnb's blockwise 4-bit
// quantisation of n values (f32, or bf16 bits): each block's absmax, then every value times f32(1 / absmax) coded;
// two codes per byte, the even element in the high nibble; an odd count pads the last low nibble with code(0).
static Napi::Value Quantize4bit(const Napi::CallbackInfo& info) {
  Args a(info, "quantize4bit");
  bool fromBf16 = a.number(1) != 0, fp4 = a.number(3) != 0;
  int64_t n = a.size(2), blocksize = a.size(4);
  a.check(n >= 0 && blocksize > 0 && blocksize <= 256 && blocksize % 2 == 0, "needs n >= 0 and an even blocksize up to 256");
  const float* f32In = fromBf16 ? nullptr : a.buffer<float>(0, n, "values");
  const uint16_t* bf16In = fromBf16 ? a.buffer<uint16_t>(0, n, "values") : nullptr;
  const float* table = a.buffer<float>(5, 16, "nf4Table");
  int64_t blocks = (n + blocksize - 1) / blocksize;
  uint8_t* packed = a.buffer<uint8_t>(6, (n + 1) / 2, "packed");
  float* absmax = a.buffer<float>(7, blocks, "absmax");
  if (!a.ok()) return info.Env().Undefined();
  const Nf4Midpoints mid(table);
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t b = 0; b < blocks; b++) {
    // one block (blocksize <= 256): its values as f32, then its codes
    int64_t start = b * blocksize, count = std::min(blocksize, n - start);
    float x[256];
    uint8_t code[256];
    for (int64_t i = 0; i < count; i++) x[i] = bf16In ? bf16_to_f32(bf16In[start + i]) : f32In[start + i];
    float m = 0;
    for (int64_t i = 0; i < count; i++) m = std::max(m, std::fabs(x[i]));
    absmax[b] = m;
    const float inv = 1.0f / m;  // ∞ for an all-zero block
    for (int64_t i = 0; i < count; i++) x[i] *= inv;
    if (fp4)
      for (int64_t i = 0; i < count; i++) code[i] = static_cast<uint8_t>(fp4Code(x[i]));
    else
      for (int64_t i = 0; i < count; i++) code[i] = static_cast<uint8_t>(nf4Code(x[i], mid.v));
    const uint8_t pad = fp4 ? 0 : 7;  // an odd count pads the last low nibble with the code of 0.0
    for (int64_t i = 0; i < count; i += 2)
      packed[(start + i) >> 1] = static_cast<uint8_t>(code[i] << 4 | (i + 1 < count ? code[i + 1] : pad));
  }
  return info.Env().Undefined();
}

// dequantize4bitRows(packed, absmax, block0, table, blocksize, cols, row0, rows, out, outBf16): rows row0.. of a
// [*, cols] weight whose flat values are 4-bit codes, two per byte (the even element in the high nibble); absmax
// holds the blocks from block0 on
static Napi::Value Dequantize4bitRows(const Napi::CallbackInfo& info) {
  Args a(info, "dequantize4bitRows");
  int64_t block0 = a.size(2), blocksize = a.size(4), cols = a.size(5), row0 = a.size(6), rows = a.size(7);
  bool bf16 = a.number(9) != 0;
  a.check(blocksize > 0 && cols > 0 && row0 >= 0 && rows >= 0, "needs blocksize, cols > 0 and rows >= 0");
  a.check(block0 >= 0 && block0 * blocksize <= row0 * cols, "needs absmax from a block at or before the first row");
  int64_t end = (row0 + rows) * cols;
  const uint8_t* packed = a.buffer<uint8_t>(0, (end + 1) / 2, "packed");
  const float* absmax = a.buffer<float>(1, blocksize > 0 ? (end + blocksize - 1) / blocksize - block0 : 0, "absmax");
  const float* table = a.buffer<float>(3, 16, "table");
  float* f32Out = bf16 ? nullptr : a.buffer<float>(8, rows * cols, "out");
  uint16_t* bf16Out = bf16 ? a.buffer<uint16_t>(8, rows * cols, "out") : nullptr;
  if (!a.ok()) return info.Env().Undefined();
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 15))
  for (int64_t r = 0; r < rows; r++) {
    const int64_t base = (row0 + r) * cols, stop = base + cols;
    // block by block: one division per block, not one per value
    for (int64_t i = base; i < stop;) {
      const int64_t block = i / blocksize, blockEnd = std::min(stop, (block + 1) * blocksize);
      const float scale = absmax[block - block0];
      for (; i < blockEnd; i++) {
        const uint8_t byte = packed[i >> 1];
        const int code = (i & 1) ? (byte & 15) : (byte >> 4);
        store(table[code] * scale, f32Out, bf16Out, r * cols + (i - base));
      }
    }
  }
  return info.Env().Undefined();
}

// expandAbsmax(codes, nestedAbsmax, nestedBlocksize, offset, map, block0, count, out): bitsandbytes' double-
// quantized absmax of blocks block0.. as f32: f32(map[code] · nested) + offset, each step rounded to f32 as
// bitsandbytes computes it.
static Napi::Value ExpandAbsmax(const Napi::CallbackInfo& info) {
  Args a(info, "expandAbsmax");
  int64_t nestedBlocksize = a.size(2), block0 = a.size(5), count = a.size(6);
  const float offset = static_cast<float>(a.number(3));
  a.check(nestedBlocksize > 0 && block0 >= 0 && count >= 0, "needs nestedBlocksize > 0, block0 and count >= 0");
  const uint8_t* codes = a.buffer<uint8_t>(0, block0 + count, "codes");
  const float* nested =
      a.buffer<float>(1, nestedBlocksize > 0 ? (block0 + count + nestedBlocksize - 1) / nestedBlocksize : 0, "nestedAbsmax");
  const float* map = a.buffer<float>(4, 256, "map");
  float* out = a.buffer<float>(7, count, "out");
  if (!a.ok()) return info.Env().Undefined();
  BlockScales scales;
  scales.codes = codes;
  scales.nested = nested;
  scales.nestedBlocksize = nestedBlocksize;
  scales.offset = offset;
  scales.map = map;
  const int64_t chunk = 1 << 14;
#pragma omp parallel for schedule(static) if (count > (1 << 16))
  for (int64_t c = 0; c < count; c += chunk) scales.expand(block0 + c, std::min(chunk, count - c), out + c);
  return info.Env().Undefined();
}

// dequantizeInt8Rows(codes, scales, cols, row0, rows, out, outBf16)
static Napi::Value DequantizeInt8Rows(const Napi::CallbackInfo& info) {
  Args a(info, "dequantizeInt8Rows");
  int64_t cols = a.size(2), row0 = a.size(3), rows = a.size(4);
  bool bf16 = a.number(6) != 0;
  a.check(cols > 0 && row0 >= 0 && rows >= 0, "needs cols > 0 and rows >= 0");
  const int8_t* codes = a.buffer<int8_t>(0, (row0 + rows) * cols, "codes");
  const float* scales = a.buffer<float>(1, row0 + rows, "scales");
  float* f32Out = bf16 ? nullptr : a.buffer<float>(5, rows * cols, "out");
  uint16_t* bf16Out = bf16 ? a.buffer<uint16_t>(5, rows * cols, "out") : nullptr;
  if (!a.ok()) return info.Env().Undefined();
  const float inv127 = 1.0f / 127.0f;
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 15))
  for (int64_t r = 0; r < rows; r++) {
    float s = scales[row0 + r];
    const int8_t* row = codes + (row0 + r) * cols;
    for (int64_t c = 0; c < cols; c++) store((static_cast<float>(row[c]) * s) * inv127, f32Out, bf16Out, r * cols + c);
  }
  return info.Env().Undefined();
}

// gemv4bit(x, packed, absmax, table, blocksize, out, M, N, K, bias[, codes, nestedAbsmax, nestedBlocksize, offset,
// map]): out[M, N] = x[M, K] · Wᵀ (+ bias) for a few rows (decoding), W [N, K] in 4-bit codes looked up in
// registers (gemv_kernels.h); absmax f32 per block, or null and the double-quantized absmax after bias.
static Napi::Value Gemv4bit(const Napi::CallbackInfo& info) {
  Args a(info, "gemv4bit");
  int64_t blocksize = a.size(4), M = a.size(6), N = a.size(7), K = a.size(8);
  a.check(M >= 1 && M <= kGemvMaxRows && N >= 0 && K > 0, "needs 1 to 4 rows, N >= 0 and K > 0");
  a.check(blocksize > 0 && blocksize % 32 == 0 && K % blocksize == 0, "needs a blocksize that is a multiple of 32 and divides K");
  const int64_t blocks = blocksize > 0 ? N * K / blocksize : 0;
  const float* x = a.buffer<float>(0, M * K, "x");
  const uint8_t* packed = a.buffer<uint8_t>(1, N * K / 2, "packed");
  BlockScales scales;
  scales.values = a.buffer<float>(2, blocks, "absmax", true);
  if (!scales.values) {
    scales.nestedBlocksize = a.size(12);
    a.check(scales.nestedBlocksize > 0, "needs nestedBlocksize > 0");
    scales.codes = a.buffer<uint8_t>(10, blocks, "codes");
    scales.nested = a.buffer<float>(11, scales.nestedBlocksize > 0 ? (blocks + scales.nestedBlocksize - 1) / scales.nestedBlocksize : 0,
                                    "nestedAbsmax");
    scales.offset = static_cast<float>(a.number(13));
    scales.map = a.buffer<float>(14, 256, "map");
  }
  const float* table = a.buffer<float>(3, 16, "table");
  float* out = a.buffer<float>(5, M * N, "out");
  const float* bias = a.buffer<float>(9, N, "bias", true);
  if (a.ok()) kernels().gemv4bit(x, packed, scales, table, blocksize, out, M, N, K, false, bias);
  return info.Env().Undefined();
}

// gemvInt8(x, codes, scales, out, M, N, K, bias): out[M, N] = x[M, K] · Wᵀ (+ bias) for a few rows, W [N, K] in 8-bit
// codes with a scale per row, each value (code · scale) / 127 as dequantizeInt8Rows makes it (gemv_kernels.h)
static Napi::Value GemvInt8(const Napi::CallbackInfo& info) {
  Args a(info, "gemvInt8");
  int64_t M = a.size(4), N = a.size(5), K = a.size(6);
  a.check(M >= 1 && M <= kGemvMaxRows && N >= 0 && K > 0, "needs 1 to 4 rows, N >= 0 and K > 0");
  const float* x = a.buffer<float>(0, M * K, "x");
  const int8_t* codes = a.buffer<int8_t>(1, N * K, "codes");
  const float* scales = a.buffer<float>(2, N, "scales");
  float* out = a.buffer<float>(3, M * N, "out");
  const float* bias = a.buffer<float>(7, N, "bias", true);
  if (a.ok()) kernels().gemvInt8(x, codes, scales, out, M, N, K, false, bias);
  return info.Env().Undefined();
}

void registerQuant(Napi::Env env, Napi::Object exports) {
  exports.Set("gemv4bit", Napi::Function::New(env, Gemv4bit));
  exports.Set("gemvInt8", Napi::Function::New(env, GemvInt8));
  exports.Set("quantize4bit", Napi::Function::New(env, Quantize4bit));
  exports.Set("dequantize4bitRows", Napi::Function::New(env, Dequantize4bitRows));
  exports.Set("expandAbsmax", Napi::Function::New(env, ExpandAbsmax));
  exports.Set("dequantizeInt8Rows", Napi::Function::New(env, DequantizeInt8Rows));
}

}  // namespace lmf
