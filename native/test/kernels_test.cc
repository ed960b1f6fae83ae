// The hand-written kernels of every compiled instruction-set path this CPU supports, against plain scalar
// references in double precision: few-row products (f32 and bf16), the packed product, attention forward and
// backward (GQA, a query offset, packed segments, lengths that cross the 64-row tiles) and the gated delta rule
// (both forward forms, the chunked backward against finite differences, the same bits on one thread as on
// several). Built without N-API, so it also runs cross-compiled under qemu-user (scripts/test-kernels.sh). Prints
// one line per check and "N passed, M failed".
#include <omp.h>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>
#include "../src/kernel_support.h"
#include "../src/kernels.h"

using namespace lmf;

namespace {
int passed = 0, failed = 0;
std::mt19937 rng(7);

std::vector<float> randn(size_t n, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

void check(const std::string& name, const std::vector<float>& got, const std::vector<double>& want, double tol) {
  double worst = 0, top = 1e-30;
  for (size_t i = 0; i < want.size(); i++) {
    worst = std::max(worst, std::fabs(got[i] - want[i]));
    top = std::max(top, std::fabs(want[i]));
  }
  bool ok = worst <= tol * top;
  (ok ? passed : failed)++;
  std::printf("%s %s: max error %.3g of max %.3g\n", ok ? "ok  " : "FAIL", name.c_str(), worst, top);
}

// A condition that passes or fails, printed as `what`.
void expect(const std::string& what, bool ok) {
  (ok ? passed : failed)++;
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
}

// K: whole unrolled chunks plus a remainder (133), plus a last single chunk and a remainder (149 with 8 lanes, 189
// with 4 and 16), none left (128)
void testGemv(const KernelTable& t) {
  for (int64_t K : {133, 149, 189, 128})
  for (int64_t M = 1; M <= kGemvMaxRows; M++) {
    const int64_t N = 37;
    std::vector<float> A = randn(M * K), W = randn(N * K), bias = randn(N), C(M * N, 0.0f);
    std::vector<uint16_t> Ab(M * K), Wb(N * K);
    for (int64_t i = 0; i < M * K; i++) Ab[i] = f32_to_bf16(A[i]);
    for (int64_t i = 0; i < N * K; i++) Wb[i] = f32_to_bf16(W[i]);
    std::vector<double> want(M * N), wantB(M * N);
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) {
        double s = bias[n], sb = bias[n];
        for (int64_t k = 0; k < K; k++) {
          s += static_cast<double>(A[m * K + k]) * W[n * K + k];
          sb += static_cast<double>(bf16_to_f32(Ab[m * K + k])) * bf16_to_f32(Wb[n * K + k]);
        }
        want[m * N + n] = s;
        wantB[m * N + n] = sb;
      }
    t.gemvF32(A.data(), W.data(), C.data(), M, N, K, false, bias.data());
    const std::string shape = " rows " + std::to_string(M) + " K " + std::to_string(K);
    check(std::string(t.name) + " gemv f32" + shape, C, want, 1e-5);
    t.gemvBf16(Ab.data(), Wb.data(), C.data(), M, N, K, false, bias.data());
    check(std::string(t.name) + " gemv bf16" + shape, C, wantB, 1e-5);
    // f32 rows against the bf16 weight: exact where the kernel widens the weight, the rows' rounding to bf16 where
    // it uses bf16 dot products
    std::vector<double> wantF32Bf16(M * N);
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) {
        double s = bias[n];
        for (int64_t k = 0; k < K; k++) s += static_cast<double>(A[m * K + k]) * bf16_to_f32(Wb[n * K + k]);
        wantF32Bf16[m * N + n] = s;
      }
    const bool bf16Dots = std::string(t.name).find("bf16") != std::string::npos;
    std::fill(C.begin(), C.end(), 1.0f);
    t.gemvF32Bf16(A.data(), Wb.data(), C.data(), M, N, K, false, bias.data());
    check(std::string(t.name) + " gemv f32 x bf16" + shape, C, bf16Dots ? wantB : wantF32Bf16, 1e-5);
  }
}

// 8-bit rows: the products of the dequantised row, (code · scale) / 127, bit for bit, tails past whole vectors too
void testGemvInt8(const KernelTable& t) {
  std::uniform_int_distribution<int> code(-127, 127);
  for (int64_t M = 1; M <= kGemvMaxRows; M++) {
    const int64_t N = 37, K = 261;
    std::vector<int8_t> codes(N * K);
    for (int8_t& c : codes) c = static_cast<int8_t>(code(rng));
    std::vector<float> scales = randn(N), A = randn(M * K), bias = randn(N), W(N * K);
    for (int64_t n = 0; n < N; n++)
      for (int64_t k = 0; k < K; k++) W[n * K + k] = (static_cast<float>(codes[n * K + k]) * scales[n]) * (1.0f / 127.0f);
    std::vector<float> C(M * N, 1.0f), viaDequantised(M * N, 1.0f);
    t.gemvInt8(A.data(), codes.data(), scales.data(), C.data(), M, N, K, true, bias.data());
    t.gemvF32(A.data(), W.data(), viaDequantised.data(), M, N, K, true, bias.data());
    check(std::string(t.name) + " gemv 8-bit rows " + std::to_string(M) + " against the dequantised row", C,
          std::vector<double>(viaDequantised.begin(), viaDequantised.end()), 0.0);
  }
}

// 4-bit weights: random codes and absmax, blocks of 64 and of 128, a row count that is not a multiple of anything
void testGemv4bit(const KernelTable& t) {
  std::uniform_int_distribution<int> byte(0, 255);
  const std::vector<float> table = randn(16, 0.5f);
  for (int64_t blocksize : {64, 128})
    for (int64_t M = 1; M <= kGemvMaxRows; M++) {
      const int64_t N = 37, K = 256;
      std::vector<uint8_t> packed(N * K / 2);
      for (uint8_t& b : packed) b = static_cast<uint8_t>(byte(rng));
      std::vector<float> absmax = randn(N * K / blocksize), A = randn(M * K), bias = randn(N), C(M * N, 1.0f);
      std::vector<double> want(M * N);
      for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
          double s = 1.0 + bias[n];  // accumulating onto C = 1
          for (int64_t k = 0; k < K; k++) {
            int64_t i = n * K + k;
            int code = i & 1 ? packed[i / 2] & 15 : packed[i / 2] >> 4;
            s += static_cast<double>(A[m * K + k]) * table[code] * absmax[i / blocksize];
          }
          want[m * N + n] = s;
        }
      BlockScales scales;
      scales.values = absmax.data();
      t.gemv4bit(A.data(), packed.data(), scales, table.data(), blocksize, C.data(), M, N, K, true, bias.data());
      check(std::string(t.name) + " gemv 4-bit blocks " + std::to_string(blocksize) + " rows " + std::to_string(M), C,
            want, 1e-5);
      // double-quantized scales give the products of the scales they expand to, bit for bit
      std::vector<uint8_t> codes(absmax.size());
      for (uint8_t& c : codes) c = static_cast<uint8_t>(byte(rng));
      std::vector<float> map = randn(256), nested = randn((absmax.size() + 255) / 256);
      BlockScales dq;
      dq.codes = codes.data();
      dq.nested = nested.data();
      dq.nestedBlocksize = 256;
      dq.offset = 0.25f;
      dq.map = map.data();
      std::vector<float> expanded(absmax.size());
      dq.expand(0, static_cast<int64_t>(expanded.size()), expanded.data());
      scales.values = expanded.data();
      std::vector<float> viaValues(M * N, 1.0f), viaCodes(M * N, 1.0f);
      t.gemv4bit(A.data(), packed.data(), scales, table.data(), blocksize, viaValues.data(), M, N, K, true, bias.data());
      t.gemv4bit(A.data(), packed.data(), dq, table.data(), blocksize, viaCodes.data(), M, N, K, true, bias.data());
      check(std::string(t.name) + " gemv 4-bit double-quantized scales rows " + std::to_string(M), viaCodes,
            std::vector<double>(viaValues.begin(), viaValues.end()), 0.0);
    }
}

struct Case {
  int64_t B, Tq, Tk, H, KV, D, qOffset;
  bool segments;
  int64_t window = 0;
  float softcap = 0.0f;
};

// Plain attention in double: out, lse and, given dout, the gradients.
void reference(const Case& c, const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
               const std::vector<int32_t>& sq, const std::vector<int32_t>& sk, float scale, const std::vector<float>& dout,
               std::vector<double>& out, std::vector<double>& lse, std::vector<double>& dq, std::vector<double>& dk,
               std::vector<double>& dv) {
  out.assign(q.size(), 0);
  lse.assign(c.B * c.H * c.Tq, 0);
  dq.assign(q.size(), 0);
  dk.assign(k.size(), 0);
  dv.assign(v.size(), 0);
  const int64_t D = c.D, group = c.H / c.KV;
  for (int64_t b = 0; b < c.B; b++)
    for (int64_t h = 0; h < c.H; h++)
      for (int64_t i = 0; i < c.Tq; i++) {
        int64_t g = h / group;
        const float* qi = &q[((b * c.Tq + i) * c.H + h) * D];
        std::vector<double> s(c.Tk, -INFINITY), p(c.Tk, 0), slope(c.Tk, 1);
        double mx = -INFINITY;
        for (int64_t j = 0; j < c.Tk; j++) {
          bool visible = j <= i + c.qOffset && (c.window == 0 || i + c.qOffset - j < c.window) &&
                         (!c.segments || sq[b * c.Tq + i] == sk[b * c.Tk + j]);
          if (!visible) continue;
          const float* kj = &k[((b * c.Tk + j) * c.KV + g) * D];
          double dot = 0;
          for (int64_t d = 0; d < D; d++) dot += static_cast<double>(qi[d]) * kj[d];
          s[j] = dot * scale;
          if (c.softcap > 0) {
            double t = std::tanh(s[j] / c.softcap);
            s[j] = c.softcap * t;
            slope[j] = 1 - t * t;
          }
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < c.Tk; j++) sum += (p[j] = s[j] == -INFINITY ? 0 : std::exp(s[j] - mx));
        lse[(b * c.H + h) * c.Tq + i] = mx + std::log(sum);
        double* oi = &out[((b * c.Tq + i) * c.H + h) * D];
        const float* gi = &dout[((b * c.Tq + i) * c.H + h) * D];
        double delta = 0;
        std::vector<double> dp(c.Tk, 0);
        for (int64_t j = 0; j < c.Tk; j++) {
          p[j] /= sum;
          const float* vj = &v[((b * c.Tk + j) * c.KV + g) * D];
          for (int64_t d = 0; d < D; d++) {
            oi[d] += p[j] * vj[d];
            dp[j] += static_cast<double>(gi[d]) * vj[d];
            dv[((b * c.Tk + j) * c.KV + g) * D + d] += p[j] * gi[d];
          }
          delta += p[j] * dp[j];
        }
        for (int64_t j = 0; j < c.Tk; j++) {
          double ds = p[j] * (dp[j] - delta) * slope[j] * scale;
          const float* kj = &k[((b * c.Tk + j) * c.KV + g) * D];
          for (int64_t d = 0; d < D; d++) {
            dq[((b * c.Tq + i) * c.H + h) * D + d] += ds * kj[d];
            dk[((b * c.Tk + j) * c.KV + g) * D + d] += ds * qi[d];
          }
        }
      }
}

// One forward and backward pass of a kernel path.
struct AttentionRun {
  std::vector<float> out, lse, dq, dk, dv;
  AttentionRun(const KernelTable& t, const AttentionShape& s, const std::vector<float>& q, const std::vector<float>& k,
               const std::vector<float>& v, const std::vector<float>& dout)
      : out(q.size()), lse(s.B * s.H * s.Tq), dq(q.size()), dk(k.size()), dv(v.size()) {
    t.attentionForward(q.data(), k.data(), v.data(), out.data(), lse.data(), s);
    t.attentionBackward(q.data(), k.data(), v.data(), out.data(), dout.data(), lse.data(), dq.data(), dk.data(), dv.data(), s);
  }
  bool operator==(const AttentionRun& o) const {
    return out == o.out && lse == o.lse && dq == o.dq && dk == o.dk && dv == o.dv;
  }
};

// values as a bf16 product reads them: times mul, rounded to bf16
std::vector<float> roundedToBf16(const std::vector<float>& x, float mul) {
  std::vector<float> r(x.size());
  for (size_t i = 0; i < x.size(); i++) r[i] = bf16_to_f32(f32_to_bf16(x[i] * mul));
  return r;
}

void testAttention(const KernelTable& t) {
  const Case cases[] = {{2, 70, 70, 4, 2, 16, 0, false},
                        {1, 5, 133, 4, 1, 32, 128, false},
                        {2, 90, 90, 2, 2, 16, 0, true},
                        {1, 200, 200, 2, 1, 16, 0, false, 70},         // sliding window across key blocks
                        {1, 3, 150, 2, 2, 16, 147, false, 40},          // window with a cache
                        {2, 80, 80, 2, 1, 16, 0, true, 30, 2.5f},       // window, packing and a softcap
                        {1, 67, 67, 4, 2, 64, 0, false},                // odd lengths, a head of four vectors
                        {1, 100, 100, 2, 2, 80, 0, true},               // a head of five vectors
                        {1, 70, 70, 2, 1, 24, 0, false},                // a head size past whole vectors
                        // decoding's few queries (their own path): keys across its 64-key blocks, GQA
                        {1, 1, 300, 6, 2, 64, 299, false},
                        {2, 4, 90, 2, 1, 16, 86, true, 0, 2.5f},        // packed, softcap
                        {1, 2, 300, 4, 2, 32, 298, false, 100},         // a window starting inside a key block
                        {1, 1, 700, 2, 1, 16, 699, false, 150},         // blocks wholly before the window
                        {1, 3, 130, 6, 2, 20, 127, false}};             // a head size past whole vectors
  for (const Case& c : cases) {
    std::vector<float> q = randn(c.B * c.Tq * c.H * c.D), k = randn(c.B * c.Tk * c.KV * c.D), v = randn(k.size());
    std::vector<float> dout = randn(q.size());
    std::vector<int32_t> sq(c.B * c.Tq), sk(c.B * c.Tk);
    for (int64_t i = 0; i < c.B * c.Tq; i++) sq[i] = static_cast<int32_t>((i % c.Tq) / 37);  // packed sequences of 37
    for (int64_t j = 0; j < c.B * c.Tk; j++) sk[j] = static_cast<int32_t>((j % c.Tk) / 37);
    float scale = 1.0f / std::sqrt(static_cast<float>(c.D));
    AttentionShape shape{c.B, c.Tq, c.Tk, c.H, c.KV, c.D, c.qOffset, c.segments ? sq.data() : nullptr,
                         c.segments ? sk.data() : nullptr, scale, c.window, c.softcap};
    const AttentionRun f32(t, shape, q, k, v, dout);
    std::vector<double> rOut, rLse, rDq, rDk, rDv;
    reference(c, q, k, v, sq, sk, scale, dout, rOut, rLse, rDq, rDk, rDv);
    std::string name = std::string(t.name) + " attention T" + std::to_string(c.Tq) + "x" + std::to_string(c.Tk) +
                       " D" + std::to_string(c.D) + (c.segments ? " packed" : "") + (c.qOffset ? " offset" : "") +
                       (c.window ? " window" + std::to_string(c.window) : "") + (c.softcap > 0 ? " softcap" : "");
    check(name + " out", f32.out, rOut, 1e-5);
    check(name + " lse", f32.lse, rLse, 1e-5);
    check(name + " dq", f32.dq, rDq, 1e-4);
    check(name + " dk", f32.dk, rDk, 1e-4);
    check(name + " dv", f32.dv, rDv, 1e-4);

    // bf16 products: on the avx512bf16 path (more queries than decoding's, whole vectors of head) against the
    // reference on the operands they round (the scaled queries, keys, values, output gradients; the probabilities
    // and score gradients round inside), elsewhere the f32 bits. Other paths compile the flag out: their first case
    // shows it (the rest would double their time under qemu).
    const bool bf16Path = std::string(t.name) == "avx512bf16";
    if (!bf16Path && &c != &cases[0]) continue;
    shape.bf16 = true;
    const AttentionRun b16(t, shape, q, k, v, dout);
    if (!bf16Path || c.D % 16 != 0 || c.Tq <= 4) {
      expect(name + " bf16: the f32 bits", b16 == f32);
      continue;
    }
    expect(name + " bf16: products on bf16 operands",
           b16.out != f32.out && b16.dq != f32.dq && b16.dk != f32.dk && b16.dv != f32.dv);
    // the same bits again (the packed operands' scratch now holds the last call's values)
    expect(name + " bf16: the same bits on a second run", AttentionRun(t, shape, q, k, v, dout) == b16);
    reference(c, roundedToBf16(q, scale), roundedToBf16(k, 1.0f), roundedToBf16(v, 1.0f), sq, sk, 1.0f,
              roundedToBf16(dout, 1.0f), rOut, rLse, rDq, rDk, rDv);
    for (double& x : rDq) x *= scale;  // the reference's queries were pre-scaled
    // what rounding P and dS to bf16 leaves (the worst case here: 4.6e-3 of the largest value, dK with a softcap)
    constexpr double kBf16Tolerance = 7.5e-3;
    check(name + " bf16 out", b16.out, rOut, kBf16Tolerance);
    check(name + " bf16 lse", b16.lse, rLse, 1e-5);
    check(name + " bf16 dq", b16.dq, rDq, kBf16Tolerance);
    check(name + " bf16 dk", b16.dk, rDk, kBf16Tolerance);
    check(name + " bf16 dv", b16.dv, rDv, kBf16Tolerance);
  }
}
// The gated delta rule token by token in double, from `init` [B, Hv, dk, dv] (or zero); returns the outputs and
// leaves the final states in `final`.
struct DeltaCase {
  DeltaShape shape;
  std::vector<int32_t> seg;  // empty: no segments
  bool init;
};

std::vector<double> deltaReference(const DeltaCase& c, const std::vector<double> in[5], const std::vector<float>& init,
                                   std::vector<double>* final) {
  const DeltaShape& s = c.shape;
  const int64_t C = 2 * s.Hk * s.dk + s.Hv * s.dv;
  const std::vector<double>&qkv = in[0], &bIn = in[1], &aIn = in[2], &Alog = in[3], &dt = in[4];
  std::vector<double> out(s.B * s.T * s.Hv * s.dv);
  if (final) final->assign(s.B * s.Hv * s.dk * s.dv, 0.0);
  for (int64_t b = 0; b < s.B; b++)
    for (int64_t h = 0; h < s.Hv; h++) {
      const int64_t kh = h / (s.Hv / s.Hk), bh = b * s.Hv + h;
      std::vector<double> S(s.dk * s.dv, 0.0), q(s.dk), k(s.dk);
      if (c.init) S.assign(init.begin() + bh * s.dk * s.dv, init.begin() + (bh + 1) * s.dk * s.dv);
      for (int64_t t = 0; t < s.T; t++) {
        const int64_t row = b * s.T + t;
        if (t > 0 && !c.seg.empty() && c.seg[row] != c.seg[row - 1]) std::fill(S.begin(), S.end(), 0.0);
        double sq = 0, sk = 0;
        for (int64_t i = 0; i < s.dk; i++) {
          sq += qkv[row * C + kh * s.dk + i] * qkv[row * C + kh * s.dk + i];
          sk += qkv[row * C + (s.Hk + kh) * s.dk + i] * qkv[row * C + (s.Hk + kh) * s.dk + i];
        }
        for (int64_t i = 0; i < s.dk; i++) {
          q[i] = qkv[row * C + kh * s.dk + i] / std::sqrt(sq + 1e-6) / std::sqrt(static_cast<double>(s.dk));
          k[i] = qkv[row * C + (s.Hk + kh) * s.dk + i] / std::sqrt(sk + 1e-6);
        }
        const double beta = 1 / (1 + std::exp(-bIn[row * s.Hv + h]));
        const double alpha = std::exp(-std::exp(Alog[h]) * std::log1p(std::exp(aIn[row * s.Hv + h] + dt[h])));
        for (double& x : S) x *= alpha;
        for (int64_t j = 0; j < s.dv; j++) {
          double recalled = 0;
          for (int64_t i = 0; i < s.dk; i++) recalled += S[i * s.dv + j] * k[i];
          const double delta = beta * (qkv[row * C + 2 * s.Hk * s.dk + h * s.dv + j] - recalled);
          double o = 0;
          for (int64_t i = 0; i < s.dk; i++) {
            S[i * s.dv + j] += k[i] * delta;
            o += S[i * s.dv + j] * q[i];
          }
          out[(row * s.Hv + h) * s.dv + j] = o;
        }
      }
      if (final) std::copy(S.begin(), S.end(), final->begin() + bh * s.dk * s.dv);
    }
  return out;
}

// Both forward forms against the reference (outputs, final states), and the chunked backward against central
// differences of the reference along random directions, for every input.
void testDeltaRule(const KernelTable& t) {
  std::vector<int32_t> packed(300);
  for (int64_t i = 0; i < 300; i++)  // row 0: segments from 64 (a chunk start) and 100; row 1: from 10 and 149 (last)
    packed[i] = i < 150 ? (i < 64 ? 1 : i < 100 ? 2 : 3) : (i % 150 < 10 ? 4 : i % 150 < 149 ? 5 : 6);
  const DeltaCase cases[] = {{{2, 150, 2, 4, 16, 24}, packed, false},
                             {{1, 64, 1, 1, 8, 8}, {}, true},
                             {{1, 200, 1, 2, 32, 16}, {}, false}};
  for (const DeltaCase& c : cases) {
    const DeltaShape& s = c.shape;
    const int64_t N = s.B * s.T, C = 2 * s.Hk * s.dk + s.Hv * s.dv, states = s.B * s.Hv * s.dk * s.dv;
    std::vector<float> inF[5] = {randn(N * C), randn(N * s.Hv), randn(N * s.Hv, 2.0f), randn(s.Hv, 0.5f), randn(s.Hv)};
    std::vector<double> in[5];
    for (int i = 0; i < 5; i++) in[i].assign(inF[i].begin(), inF[i].end());
    const std::vector<float> init = randn(states, 0.3f);
    const DeltaInputs din{inF[0].data(), inF[1].data(), inF[2].data(), inF[3].data(), inF[4].data(),
                          c.seg.empty() ? nullptr : c.seg.data()};
    std::vector<double> wantFinal;
    const std::vector<double> want = deltaReference(c, in, init, &wantFinal);
    const std::string name = std::string(t.name) + " gated delta T" + std::to_string(s.T) + " Hv" +
                             std::to_string(s.Hv) + (c.seg.empty() ? "" : " packed") + (c.init ? " from a state" : "");
    std::vector<float> out(N * s.Hv * s.dv), final(states);
    const int64_t chunks = (s.T + kDeltaChunk - 1) / kDeltaChunk;
    std::vector<float> checkpoints(s.B * s.Hv * chunks * s.dk * s.dv);
    t.deltaRecurrentForward(s, din, out.data(), c.init ? init.data() : nullptr, final.data());
    check(name + " recurrent out", out, want, 1e-5);
    check(name + " recurrent state", final, wantFinal, 1e-5);
    t.deltaChunkedForward(s, din, out.data(), checkpoints.data(), c.init ? init.data() : nullptr, final.data());
    check(name + " chunked out", out, want, 1e-5);
    check(name + " chunked state", final, wantFinal, 1e-5);
    if (c.init) continue;  // the backward pass is for training, which starts from a zero state
    const std::vector<float> dout = randn(out.size());
    std::vector<float> grad[5] = {std::vector<float>(N * C), std::vector<float>(N * s.Hv), std::vector<float>(N * s.Hv),
                                  std::vector<float>(s.Hv, 0.0f), std::vector<float>(s.Hv, 0.0f)};
    t.deltaChunkedBackward(s, din, dout.data(), checkpoints.data(), grad[0].data(), grad[1].data(), grad[2].data(),
                           grad[3].data(), grad[4].data());
    // one thread gives the same bits as several: every sum has one order
    {
      const int threads = omp_get_max_threads();
      omp_set_num_threads(1);
      std::vector<float> out1(out.size()), ck1(checkpoints.size()), dqkv1(grad[0].size()), db1(grad[1].size()),
          da1(grad[2].size()), dA1(s.Hv, 0.0f), dt1(s.Hv, 0.0f);
      t.deltaChunkedForward(s, din, out1.data(), ck1.data(), nullptr, nullptr);
      t.deltaChunkedBackward(s, din, dout.data(), ck1.data(), dqkv1.data(), db1.data(), da1.data(), dA1.data(), dt1.data());
      omp_set_num_threads(threads);
      const bool same = out1 == out && ck1 == checkpoints && dqkv1 == grad[0] && db1 == grad[1] && da1 == grad[2] &&
                        dA1 == grad[3] && dt1 == grad[4];
      expect(name + ": one thread and " + std::to_string(threads) + " give the same bits", same);
    }
    const char* names[5] = {"qkv", "b", "a", "A_log", "dt_bias"};
    for (int i = 0; i < 5; i++) {
      const std::vector<float> dir = randn(in[i].size());
      auto projected = [&](double step) {
        std::vector<double> moved[5] = {in[0], in[1], in[2], in[3], in[4]};
        for (size_t j = 0; j < dir.size(); j++) moved[i][j] += step * dir[j];
        const std::vector<double> o = deltaReference(c, moved, init, nullptr);
        double f = 0;
        for (size_t j = 0; j < o.size(); j++) f += o[j] * dout[j];
        return f;
      };
      const double eps = 1e-5, numeric = (projected(eps) - projected(-eps)) / (2 * eps);
      // measured against the terms' magnitudes: the directional sum may cancel far below its f32 terms' rounding
      double analytic = 0, magnitude = 0;
      for (size_t j = 0; j < dir.size(); j++) {
        analytic += static_cast<double>(grad[i][j]) * dir[j];
        magnitude += std::fabs(static_cast<double>(grad[i][j]) * dir[j]);
      }
      const double error = std::fabs(analytic - numeric);
      const bool ok = error <= 1e-4 * std::max(magnitude, std::fabs(numeric));
      (ok ? passed : failed)++;
      std::printf("%s %s d%s: |analytic - numeric| %.3g, %.3g of the terms' sum %.3g\n", ok ? "ok  " : "FAIL",
                  name.c_str(), names[i], error, numeric, magnitude);
    }
  }
}
// The packed product (paths that offer it): whole 64-column panels and the tails past them (a vector, a few
// columns, both), contractions shorter and longer than a panel's 384 steps and not a multiple of it, row counts
// around the groups of 6, accumulating or not; the same bits on one thread as on several (rows are split, sums keep
// one order).
void testPackedGemm(const KernelTable& t) {
  if (!t.packedGemmF32) return;
  struct Shape {
    int64_t M, N, K;
  };
  for (const Shape& sh : {Shape{1, 64, 64}, Shape{7, 80, 385}, Shape{13, 130, 384}, Shape{6, 200, 800},
                          Shape{64, 576, 96}, Shape{101, 67, 1000}, Shape{9, 147, 400}})
    for (bool accumulate : {false, true}) {
      const int64_t M = sh.M, N = sh.N, K = sh.K;
      const std::vector<float> A = randn(M * K), B = randn(K * N), C0 = randn(M * N);
      std::vector<double> want(M * N);
      for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
          double s = accumulate ? C0[m * N + n] : 0.0;
          for (int64_t k = 0; k < K; k++) s += static_cast<double>(A[m * K + k]) * B[k * N + n];
          want[m * N + n] = s;
        }
      std::vector<float> C = C0, C1 = C0;
      t.packedGemmF32(A.data(), B.data(), C.data(), M, N, K, accumulate);
      const std::string name = std::string(t.name) + " packed gemm " + std::to_string(M) + "x" + std::to_string(N) +
                               "x" + std::to_string(K) + (accumulate ? " accumulating" : "");
      check(name, C, want, 1e-5);
      const int threads = omp_get_max_threads();
      omp_set_num_threads(1);
      t.packedGemmF32(A.data(), B.data(), C1.data(), M, N, K, accumulate);
      omp_set_num_threads(threads);
      expect(name + ": one thread and " + std::to_string(threads) + " give the same bits", C1 == C);
    }
}
}  // namespace

int main() {
  int count = 0;
  const KernelTable* paths = kernelPaths(&count);
#ifdef LMF_EMULATED_AVX512
  // the AVX-512 paths of this binary were compiled on SIMDe's portable emulation: every path runs here
  const int supported = count;
#else
  const int supported = supportedLevels();
#endif
  for (int i = 0; i < count; i++) {
    if (paths[i].level >= supported) {
      std::printf("skip %s: this CPU lacks its instructions\n", paths[i].name);
      continue;
    }
    testGemv(paths[i]);
    testGemv4bit(paths[i]);
    testGemvInt8(paths[i]);
    testPackedGemm(paths[i]);
    testAttention(paths[i]);
    testDeltaRule(paths[i]);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
