// Dequantising rows of a bitsandbytes-quantized weight (src/models/quant/bnb.ts) into f32 or bf16, for the
// quantized projections' matmuls: a panel of rows at a time, so no full-precision copy of a weight exists.
// Each value is f32(table[code] * absmax[block]) (4-bit) or f32(f32(code * scale[row]) * f32(1/127)) (int8), the
// same arithmetic as bnb's dequantisation; bf16 output rounds that f32 to nearest even.
#include <cstring>
#include "common.h"
#include "kernel_support.h"

namespace lmf {

namespace {

void store(float v, float* f32Out, uint16_t* bf16Out, int64_t i) {
  if (bf16Out)
    bf16Out[i] = f32_to_bf16(v);
  else
    f32Out[i] = v;
}

}  // namespace

// dequantize4bitRows(packed, absmax, table, blocksize, cols, row0, rows, out, outBf16): rows row0.. of a [*, cols]
// weight whose flat values are 4-bit codes, two per byte (the even element in the high nibble)
static Napi::Value Dequantize4bitRows(const Napi::CallbackInfo& info) {
  Args a(info, "dequantize4bitRows");
  int64_t blocksize = a.size(3), cols = a.size(4), row0 = a.size(5), rows = a.size(6);
  bool bf16 = a.number(8) != 0;
  a.check(blocksize > 0 && cols > 0 && row0 >= 0 && rows >= 0, "needs blocksize, cols > 0 and rows >= 0");
  int64_t end = (row0 + rows) * cols;
  const uint8_t* packed = a.buffer<uint8_t>(0, (end + 1) / 2, "packed");
  const float* absmax = a.buffer<float>(1, (end + blocksize - 1) / blocksize, "absmax");
  const float* table = a.buffer<float>(2, 16, "table");
  float* f32Out = bf16 ? nullptr : a.buffer<float>(7, rows * cols, "out");
  uint16_t* bf16Out = bf16 ? a.buffer<uint16_t>(7, rows * cols, "out") : nullptr;
  if (!a.ok()) return info.Env().Undefined();
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 15))
  for (int64_t r = 0; r < rows; r++) {
    int64_t base = (row0 + r) * cols;
    for (int64_t c = 0; c < cols; c++) {
      int64_t i = base + c;
      uint8_t byte = packed[i >> 1];
      int code = (i & 1) ? (byte & 15) : (byte >> 4);
      store(table[code] * absmax[i / blocksize], f32Out, bf16Out, r * cols + c);
    }
  }
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

void registerQuant(Napi::Env env, Napi::Object exports) {
  exports.Set("dequantize4bitRows", Napi::Function::New(env, Dequantize4bitRows));
  exports.Set("dequantizeInt8Rows", Napi::Function::New(env, DequantizeInt8Rows));
}

}  // namespace lmf
