// Causal grouped-query attention, tiled in blocks of queries and keys with an online softmax, so the
// T×T score matrix never exists. The forward pass keeps only the log-sum-exp of each query row; the
// backward pass recomputes the scores block by block from it.
//
// Layouts: q, out, dq [B, Tq, H, D]; k, v, dk, dv [B, Tk, KV, D]; lse [B, H, Tq].
// Query i (0-based) stands at key position i + qOffset; it sees key j when j <= i + qOffset, when j is less
// than `window` positions back (sliding-window layers; window 0 = unlimited) and, when segment ids are given,
// when both tokens belong to the same segment (packed sequences, padding). With a softcap the scores become
// softcap * tanh(score / softcap) before the softmax, and the backward pass multiplies by the tanh's slope.
// Query head h reads key/value head h / (H / KV), as Hugging Face's repeat_kv.
//
// Plain pointers and sizes, compiled once per instruction set inside LMF_ISA_NS (native/src/isa/*.cc): the
// 16-float tiles of tile_gemm.h and the exp of vecmath.h become AVX-512 or AVX2 code by -march.
#ifndef LMF_ISA_NS
#error "define LMF_ISA_NS before including attention_kernels.h"
#endif
#include <omp.h>
#include <algorithm>
#include <cmath>
#include <vector>
#include "kernel_support.h"
#include "kernels.h"
#include "tile_gemm.h"
#include "vecmath.h"

namespace lmf {
namespace LMF_ISA_NS {
namespace {

constexpr int64_t BQ = 64, BK = 64;
// scratch slots (common.h) of the backward pass
// (one dQ slot per thread from kSlotDq up: above every other kernel's slots, whatever the thread count)
constexpr int kSlotQ = 100, kSlotDout = 101, kSlotDelta = 102, kSlotDk = 103, kSlotDv = 104, kSlotDq = 1000;

struct Shape : AttentionShape {
  int64_t group() const { return H / KV; }
  int64_t qRow(int64_t b, int64_t i, int64_t h) const { return ((b * Tq + i) * H + h) * D; }
  int64_t kRow(int64_t b, int64_t j, int64_t g) const { return ((b * Tk + j) * KV + g) * D; }
  bool visible(int64_t b, int64_t i, int64_t j) const {
    return j <= i + qOffset && (window == 0 || i + qOffset - j < window) &&
           (!segQ || segQ[b * Tq + i] == segK[b * Tk + j]);
  }
  // The keys of [j0, j0 + n) that query i sees, as offsets [from, to) into the block, where they form one range
  // (the causal limit and the window); false with segment ids, whose visibility goes key by key.
  bool visibleSpan(int64_t i, int64_t j0, int64_t n, int64_t& from, int64_t& to) const {
    if (segQ) return false;
    const int64_t last = i + qOffset;  // the last key query i sees
    to = std::clamp<int64_t>(last + 1 - j0, 0, n);
    from = window == 0 ? 0 : std::clamp<int64_t>(last - window + 1 - j0, 0, to);
    return true;
  }
  // Number of keys the last query of [i0, i0+n) can see: the key range a query block has to visit.
  int64_t keyEnd(int64_t i0, int64_t n) const { return std::min(Tk, i0 + n + qOffset); }
  // The first key the first query of a block can see, rounded down to a key block.
  int64_t keyBegin(int64_t i0) const {
    if (window == 0) return 0;
    int64_t j = std::max<int64_t>(0, i0 + qOffset - window + 1);
    return j / BK * BK;
  }
  // One past the last query that can see a key of [j0, j0+nk).
  int64_t queryEnd(int64_t j0, int64_t nk) const {
    return window == 0 ? Tq : std::min(Tq, j0 + nk - 1 + window - qOffset);
  }
};

// Soft-capping of a block of scores in place; `slope` (when given) receives d capped / d raw = 1 - tanh^2.
void softcapScores(float* s, int64_t n, float cap, float* slope) {
  for (int64_t j = 0; j < n; j++) {
    float t = std::tanh(s[j] / cap);
    s[j] = cap * t;
    if (slope) slope[j] = 1.0f - t * t;
  }
}

// Copies n rows of D values, strided by `stride`, into a contiguous [n, D] block, times `mul`.
void gather(const float* src, int64_t stride, int64_t n, int64_t D, float mul, float* dst) {
  for (int64_t r = 0; r < n; r++)
    for (int64_t d = 0; d < D; d++) dst[r * D + d] = src[r * stride + d] * mul;
}
// Copies n strided rows into a transposed block of BK columns, [D, BK] (columns n..BK are zero).
void gatherT(const float* src, int64_t stride, int64_t n, int64_t D, float* dst) {
  for (int64_t d = 0; d < D; d++) std::fill(dst + d * BK + n, dst + d * BK + BK, 0.0f);
  for (int64_t r = 0; r < n; r++)
    for (int64_t d = 0; d < D; d++) dst[d * BK + r] = src[r * stride + d];
}
// Sets the entries of a row of `width` scores for keys j0.. that query i does not see (or past nk) to `hidden`: two
// fills where the visible keys form a range (a key-by-key test cost more than the diagonal tile's products).
void maskRow(const Shape& sh, int64_t b, int64_t i, int64_t j0, int64_t nk, int64_t width, float* row, float hidden) {
  int64_t from, to;
  if (sh.visibleSpan(i, j0, nk, from, to)) {
    std::fill(row, row + from, hidden);
    std::fill(row + to, row + width, hidden);
    return;
  }
  for (int64_t j = 0; j < width; j++)
    if (j >= nk || !sh.visible(b, i, j0 + j)) row[j] = hidden;
}

// True when every key of [j0, j0+nk) is visible to every query of [i0, i0+nq): no mask needed.
bool fullyVisible(const Shape& sh, int64_t i0, int64_t nq, int64_t j0, int64_t nk) {
  return !sh.segQ && j0 + nk - 1 <= i0 + sh.qOffset && (sh.window == 0 || i0 + nq - 1 + sh.qOffset - j0 < sh.window);
}

// P = exp(S - lse) on visible entries, 0 elsewhere (and past nk).
void probabilities(const Shape& sh, int64_t b, int64_t i0, int64_t nq, int64_t j0, int64_t nk, const float* lse,
                   const float* S, float* P) {
  bool full = fullyVisible(sh, i0, nq, j0, nk);
  for (int64_t i = 0; i < nq; i++) {
    float l = lse[i0 + i];
    const float* s = S + i * BK;
    float* p = P + i * BK;
#pragma omp simd
    for (int64_t j = 0; j < BK; j++) p[j] = exp_approx(s[j] - l);
    if (full) std::fill(p + nk, p + BK, 0.0f);
    else maskRow(sh, b, i0 + i, j0, nk, BK, p, 0.0f);
  }
}

// Decoding's few queries (Tq <= kDecodeQueries) would fill a 64-row tile for one row. Instead a task takes one
// key/value head and one block of kDecodeKeys keys (so a short cache still gives every thread work), and runs all
// the queries of the heads that share it against those keys, each key and value row read once for all of them;
// it leaves per query its block's max score, sum of exponentials and weighted sum of values, and the blocks are
// combined afterwards in a fixed order (the same bits on any number of threads).
constexpr int64_t kDecodeQueries = 4, kDecodeKeys = 64;
constexpr int kSlotDecode = 105, kSlotKt = 106;
// the bf16 products' packed operands (kSlotKt holds K's pairs)
constexpr int kSlotVPairs = 107, kSlotQPairs = 108, kSlotDoutPairs = 109, kSlotQPairsT = 110, kSlotDoutPairsT = 111;

// the scores s[0..n) of one query (scaled) against n key rows of stride `stride`: four keys at a time, each with
// its own accumulator (four independent chains), their lanes summed together at the end
void decodeScores(const float* qs, const float* k, int64_t stride, int64_t n, int64_t D, float* s) {
  const int64_t whole = D - D % kLanes;
  const auto at = [](const float* p) { return *reinterpret_cast<const vf*>(p); };
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* kj[4] = {k + j * stride, k + (j + 1) * stride, k + (j + 2) * stride, k + (j + 3) * stride};
    // named, not an array: GCC at -O2 kept an array of accumulators in memory
    vf acc0 = {}, acc1 = {}, acc2 = {}, acc3 = {};
    for (int64_t d = 0; d < whole; d += kLanes) {
      const vf x = at(qs + d);
      acc0 += x * at(kj[0] + d);
      acc1 += x * at(kj[1] + d);
      acc2 += x * at(kj[2] + d);
      acc3 += x * at(kj[3] + d);
    }
    const vf acc[4] = {acc0, acc1, acc2, acc3};
    sumLanes4(acc, s + j);
    for (int64_t d = whole; d < D; d++)
      for (int u = 0; u < 4; u++) s[j + u] += qs[d] * kj[u][d];
  }
  for (; j < n; j++) {
    const float* kj = k + j * stride;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t d = 0; d < D; d++) dot += qs[d] * kj[d];
    s[j] = dot;
  }
}

void attentionDecode(const Shape& sh, const float* q, const float* k, const float* v, float* out, float* lse) {
  const int64_t D = sh.D, G = sh.group(), rows = G * sh.Tq, stride = sh.KV * D;
  const int64_t blocks = (sh.Tk + kDecodeKeys - 1) / kDecodeKeys, tasks = sh.B * sh.KV * blocks;
  // per task and query row (head of the group, query): block max, block sum, D weighted values
  const int64_t partSize = D + 2;
  float* parts = scratch(kSlotDecode, static_cast<size_t>(tasks * rows * partSize));
  // one task: every query row of its key/value head against its block of keys; qs [D] and s [rows, kDecodeKeys]
  // are the thread's scratch. Each row's scores become its block's weights (zero where hidden), and one product of
  // the weights with the block's values gives every row's weighted sum.
  const auto runTask = [&](int64_t task, float* qs, float* s) {
    const int64_t blk = task % blocks, g = (task / blocks) % sh.KV, b = task / (blocks * sh.KV);
    const int64_t j0 = blk * kDecodeKeys, n = std::min(kDecodeKeys, sh.Tk - j0);
    float* taskParts = parts + task * rows * partSize;
    for (int64_t r = 0; r < rows; r++) {
      const int64_t h = g * G + r % G, i = r / G;
      float* part = taskParts + r * partSize;
      float* p = s + r * kDecodeKeys;
      part[0] = -INFINITY;
      part[1] = 0.0f;
      // a block wholly after this query, or wholly before its window, is skipped (a sliding window over a long
      // cache then costs the window, not the cache)
      const int64_t last = i + sh.qOffset;
      if (j0 > last || (sh.window > 0 && last - (j0 + n - 1) >= sh.window)) {
        std::fill(p, p + n, 0.0f);
        continue;
      }
      gather(q + sh.qRow(b, i, h), D, 1, D, sh.scale, qs);
      decodeScores(qs, k + sh.kRow(b, j0, g), stride, n, D, p);
      if (sh.softcap > 0.0f) softcapScores(p, n, sh.softcap, nullptr);
      if (!fullyVisible(sh, i, 1, j0, n)) maskRow(sh, b, i, j0, n, n, p, -INFINITY);
      const float m = maxOf(p, n);
      float l = 0.0f;
      if (m == -INFINITY) {
        std::fill(p, p + n, 0.0f);
        continue;
      }
#pragma omp simd reduction(+ : l)
      for (int64_t j = 0; j < n; j++) {
        const float e = p[j] == -INFINITY ? 0.0f : exp_approx(p[j] - m);
        p[j] = e;
        l += e;
      }
      part[0] = m;
      part[1] = l;
    }
    tileGemm(s, kDecodeKeys, v + sh.kRow(b, j0, g), stride, taskParts + 2, partSize, rows, D, n, false);
  };
  // one query row: its blocks combined in order
  const auto combineRow = [&](int64_t row) {
    const int64_t h = row % sh.H, i = (row / sh.H) % sh.Tq, b = row / (sh.H * sh.Tq), g = h / G;
    const int64_t r = i * G + h % G;
    const float* first = parts + ((b * sh.KV + g) * blocks * rows + r) * partSize;
    const int64_t step = rows * partSize;
    float m = -INFINITY;
    for (int64_t blk = 0; blk < blocks; blk++) m = std::max(m, first[blk * step]);
    float* o = out + sh.qRow(b, i, h);
    std::fill(o, o + D, 0.0f);
    float l = 0.0f;
    if (m != -INFINITY)
      for (int64_t blk = 0; blk < blocks; blk++) {
        const float* part = first + blk * step;
        if (part[0] == -INFINITY) continue;
        const float w = std::exp(part[0] - m);
        l += part[1] * w;
#pragma omp simd
        for (int64_t d = 0; d < D; d++) o[d] += part[2 + d] * w;
      }
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int64_t d = 0; d < D; d++) o[d] *= inv;
    if (lse) lse[(b * sh.H + h) * sh.Tq + i] = l > 0.0f ? m + std::log(l) : INFINITY;
  };
  const int64_t queryRows = sh.B * sh.H * sh.Tq;
  // a short cache runs here, without a thread team (see splitRange)
  if (sh.B * sh.H * sh.Tk * D <= (1 << 15)) {
    FlushDenormals ftz;
    std::vector<float> qs(D), s(rows * kDecodeKeys);
    for (int64_t task = 0; task < tasks; task++) runTask(task, qs.data(), s.data());
    for (int64_t row = 0; row < queryRows; row++) combineRow(row);
    return;
  }
#pragma omp parallel
  {
    FlushDenormals ftz;
    std::vector<float> qs(D), s(rows * kDecodeKeys);
    // tasks taken as threads come free: a core the hypervisor or another process delays holds up less
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; task++) runTask(task, qs.data(), s.data());
#pragma omp for schedule(static)
    for (int64_t row = 0; row < queryRows; row++) combineRow(row);
  }
}

// The products of the tiled passes on f32 values. Forward: K of each (batch, key/value head) transposed once, a
// [D, BK] block per key block (zero past Tk), for every query block to read; V's rows read in place. A copy per
// thread holds that thread's buffers. (One [D, Tk] array per head put a block's rows 2 KiB apart at 512 keys, all in
// the same few sets of the L1 cache: the scores' product ran 30% slower.)
class F32Forward {
 public:
  F32Forward(const Shape& sh, const float* k, const float* v)
      : sh_(sh), k_(k), v_(v), keyStride_((sh.Tk + BK - 1) / BK * BK),
        kT_(scratch(kSlotKt, static_cast<size_t>(sh.B * sh.KV * sh.D * keyStride_))) {}
  // packs key block t % nKB of (batch, key/value head) t / nKB, at kT_ + t * D * BK
  void pack(int64_t t) const {
    const int64_t nKB = keyStride_ / BK, jb = t % nKB, bg = t / nKB, j0 = jb * BK;
    gatherT(k_ + sh_.kRow(bg / sh_.KV, j0, bg % sh_.KV), sh_.KV * sh_.D, std::min(BK, sh_.Tk - j0), sh_.D,
            kT_ + t * sh_.D * BK);
  }
  // nq query rows (H * D apart), scaled
  void queries(const float* q, int64_t nq) {
    qs_.resize(BQ * sh_.D);
    gather(q, sh_.H * sh_.D, nq, sh_.D, sh_.scale, qs_.data());
  }
  // s [nq, BK] = the queries' scores against key block j0 of (batch, key/value head) bg
  void scores(int64_t bg, int64_t j0, int64_t nq, float* s) const {
    tileGemm(qs_.data(), sh_.D, kT_ + (bg * keyStride_ + j0) * sh_.D, BK, s, BK, nq, BK, sh_.D, false);
  }
  // acc [nq, D] += p [nq, BK] · the block's values (nk of them)
  void addValues(const float* p, int64_t b, int64_t g, int64_t j0, int64_t nk, int64_t nq, float* acc) const {
    tileGemm(p, BK, v_ + sh_.kRow(b, j0, g), sh_.KV * sh_.D, acc, sh_.D, nq, sh_.D, nk, true);
  }

 private:
  const Shape& sh_;
  const float *k_, *v_;
  int64_t keyStride_;
  float* kT_;
  std::vector<float> qs_;
};

// Backward: the scaled queries and output gradients per head, contiguous [B*H, Tq, D] (qs, dO), read as they are;
// per task the key block's K and V transposed and K gathered, and its dK, dV sums.
class F32Backward {
 public:
  F32Backward(const Shape& sh, const float* qs, const float* dO) : sh_(sh), qs_(qs), dO_(dO) {}
  void prepareHead(int64_t) const {}
  void keyBlock(const float* k, const float* v, int64_t nk) {
    const int64_t D = sh_.D, stride = sh_.KV * D;
    kt_.resize(D * BK), vt_.resize(D * BK), kb_.resize(BK * D);
    gatherT(k, stride, nk, D, kt_.data());
    gatherT(v, stride, nk, D, vt_.data());
    gather(k, stride, nk, D, 1.0f, kb_.data());
    dK_.assign(BK * D, 0.0f);
    dV_.assign(BK * D, 0.0f);
  }
  // s [nq, BK] = scores of queries i0.. of head bh against the key block
  void scores(int64_t bh, int64_t i0, int64_t nq, float* s) const {
    tileGemm(head(qs_, bh, i0), sh_.D, kt_.data(), BK, s, BK, nq, BK, sh_.D, false);
  }
  void addDv(const float* p, int64_t bh, int64_t i0, int64_t nq, int64_t nk) {  // dV += Pᵀ dO
    tileGemm<true>(p, BK, head(dO_, bh, i0), sh_.D, dV_.data(), sh_.D, nk, sh_.D, nq, true);
  }
  void dP(int64_t bh, int64_t i0, int64_t nq, float* s) const {  // s = dO Vᵀ
    tileGemm(head(dO_, bh, i0), sh_.D, vt_.data(), BK, s, BK, nq, BK, sh_.D, false);
  }
  void addDk(const float* dS, int64_t bh, int64_t i0, int64_t nq, int64_t nk) {  // dK += dSᵀ q (q pre-scaled)
    tileGemm<true>(dS, BK, head(qs_, bh, i0), sh_.D, dK_.data(), sh_.D, nk, sh_.D, nq, true);
  }
  void addDq(const float* dS, int64_t nq, int64_t nk, float* dQ) const {  // dQ += dS K
    tileGemm(dS, BK, kb_.data(), sh_.D, dQ, sh_.D, nq, sh_.D, nk, true);
  }
  // the key block's dK and dV rows
  void store(int64_t nk, float* dk, float* dv) const {
    std::memcpy(dk, dK_.data(), nk * sh_.D * 4);
    std::memcpy(dv, dV_.data(), nk * sh_.D * 4);
  }

 private:
  const float* head(const float* all, int64_t bh, int64_t i0) const { return all + (bh * sh_.Tq + i0) * sh_.D; }
  const Shape& sh_;
  const float *qs_, *dO_;
  std::vector<float> kt_, vt_, kb_, dK_, dV_;
};

#if defined(__AVX512BF16__)
// The same products on bf16 dot products (tileGemmBf16): every operand rounded to bf16 once, as a pair of values
// per 32-bit word, the accumulators, softmax and sums f32. A bf16 matmul rounds its f32 inputs the same way.

// a scratch slot holding `count` 32-bit words
inline uint32_t* scratchWords(int slot, int64_t count) {
  return reinterpret_cast<uint32_t*>(scratch(slot, static_cast<size_t>(count)));
}
inline uint32_t bf16Pair(float lo, float hi) {
  return f32_to_bf16(lo) | static_cast<uint32_t>(f32_to_bf16(hi)) << 16;
}
// n rows of `width` values (even), `stride` apart, as rows of width / 2 pairs (ld words apart)
void pairAlongRows(const float* src, int64_t stride, int64_t n, int64_t width, uint32_t* dst, int64_t ld) {
  for (int64_t r = 0; r < n; r++)
#pragma omp simd
    for (int64_t c = 0; c < width / 2; c++)
      dst[r * ld + c] = bf16Pair(src[r * stride + 2 * c], src[r * stride + 2 * c + 1]);
}
// The same pairs transposed: word (c, r) holds row r's values 2c and 2c + 1; rows n..padTo are zero
void pairAlongRowsT(const float* src, int64_t stride, int64_t n, int64_t width, int64_t padTo, uint32_t* dst,
                    int64_t ld) {
  for (int64_t c = 0; c < width / 2; c++) {
    for (int64_t r = 0; r < n; r++) dst[c * ld + r] = bf16Pair(src[r * stride + 2 * c], src[r * stride + 2 * c + 1]);
    std::fill(dst + c * ld + n, dst + c * ld + padTo, 0u);
  }
}
// pairs down the columns: word (r2, c) holds rows 2·r2 and 2·r2 + 1 of column c, the missing row of an odd n zero
void pairDownColumns(const float* src, int64_t stride, int64_t n, int64_t width, uint32_t* dst, int64_t ld) {
  for (int64_t r = 0; r + 1 < n; r += 2) {
    const float *even = src + r * stride, *odd = even + stride;
    uint32_t* out = dst + r / 2 * ld;
#pragma omp simd
    for (int64_t c = 0; c < width; c++) out[c] = bf16Pair(even[c], odd[c]);
  }
  if (n % 2)
    for (int64_t c = 0; c < width; c++) dst[n / 2 * ld + c] = bf16Pair(src[(n - 1) * stride + c], 0.0f);
}
// the same transposed: word (c, r2); pairs past n / 2 (up to padTo) zero
void pairDownColumnsT(const float* src, int64_t stride, int64_t n, int64_t width, int64_t padTo, uint32_t* dst,
                      int64_t ld) {
  for (int64_t c = 0; c < width; c++) {
    for (int64_t r = 0; r < n; r += 2)
      dst[c * ld + r / 2] = bf16Pair(src[r * stride + c], r + 1 < n ? src[(r + 1) * stride + c] : 0.0f);
    std::fill(dst + c * ld + (n + 1) / 2, dst + c * ld + padTo, 0u);
  }
}

// Forward: K of each (batch, key/value head) once as pairs along D, transposed, a [D/2, BK] block per key block (as
// F32Forward; zero past Tk, since the scores take whole blocks), and V as pairs of keys [ceil(Tk/2), D] (the products
// with P read no pair past the last key); the query block and the probabilities rounded per thread.
class Bf16Forward {
 public:
  Bf16Forward(const Shape& sh, const float* k, const float* v)
      : sh_(sh), k_(k), v_(v), keyStride_((sh.Tk + BK - 1) / BK * BK),
        kPairs_(scratchWords(kSlotKt, sh.B * sh.KV * sh.D / 2 * keyStride_)),
        vPairs_(scratchWords(kSlotVPairs, sh.B * sh.KV * keyStride_ / 2 * sh.D)) {}
  void pack(int64_t t) const {
    const int64_t nKB = keyStride_ / BK, jb = t % nKB, bg = t / nKB, j0 = jb * BK, D = sh_.D;
    const int64_t b = bg / sh_.KV, g = bg % sh_.KV, nk = std::min(BK, sh_.Tk - j0);
    pairAlongRowsT(k_ + sh_.kRow(b, j0, g), sh_.KV * D, nk, D, BK, kPairs_ + t * D / 2 * BK, BK);
    pairDownColumns(v_ + sh_.kRow(b, j0, g), sh_.KV * D, nk, D, vPairs_ + (bg * keyStride_ + j0) / 2 * D, D);
  }
  void queries(const float* q, int64_t nq) {
    scaled_.resize(BQ * sh_.D);
    qPairs_.resize(BQ * sh_.D / 2);
    p_.resize(BQ * BK / 2);
    gather(q, sh_.H * sh_.D, nq, sh_.D, sh_.scale, scaled_.data());
    pairAlongRows(scaled_.data(), sh_.D, nq, sh_.D, qPairs_.data(), sh_.D / 2);
  }
  void scores(int64_t bg, int64_t j0, int64_t nq, float* s) const {
    tileGemmBf16(qPairs_.data(), sh_.D / 2, kPairs_ + (bg * keyStride_ + j0) * sh_.D / 2, BK, s, BK, nq, BK, sh_.D / 2,
                 false);
  }
  // p is zero past nk, so the pair that an odd nk leaves half filled adds nothing
  void addValues(const float* p, int64_t b, int64_t g, int64_t j0, int64_t nk, int64_t nq, float* acc) {
    pairAlongRows(p, BK, nq, BK, p_.data(), BK / 2);
    const uint32_t* vBlock = vPairs_ + ((b * sh_.KV + g) * keyStride_ + j0) / 2 * sh_.D;
    tileGemmBf16(p_.data(), BK / 2, vBlock, sh_.D, acc, sh_.D, nq, sh_.D, (nk + 1) / 2, true);
  }

 private:
  const Shape& sh_;
  const float *k_, *v_;
  int64_t keyStride_;
  uint32_t *kPairs_, *vPairs_;
  std::vector<float> scaled_;
  std::vector<uint32_t> qPairs_, p_;
};

// Backward: per head the scaled queries and output gradients as rows of pairs [Tq, D/2] (for the scores and dP) and
// as pairs of queries transposed [D, ceil(Tq/2)] (for dK and dV, kept transposed, [D, BK], until the block ends);
// per task the key block's K and V as pairs along D transposed and K as pairs of keys; per query block P and dS as
// pairs of queries and dS as rows of pairs. The four per-head arrays take as much scratch again as the f32 copies
// of the queries and output gradients, which stay (the packing reads them).
class Bf16Backward {
 public:
  Bf16Backward(const Shape& sh, const float* qs, const float* dO)
      : sh_(sh), qs_(qs), dO_(dO), half_((sh.Tq + 1) / 2), rows_(words(kSlotQPairs)), dORows_(words(kSlotDoutPairs)),
        cols_(words(kSlotQPairsT)), dOCols_(words(kSlotDoutPairsT)) {}
  // the pairs of head bh, from the f32 rows
  void prepareHead(int64_t bh) const {
    const int64_t D = sh_.D, Tq = sh_.Tq;
    const float *q = qs_ + bh * Tq * D, *g = dO_ + bh * Tq * D;
    pairAlongRows(q, D, Tq, D, rows_ + bh * Tq * D / 2, D / 2);
    pairAlongRows(g, D, Tq, D, dORows_ + bh * Tq * D / 2, D / 2);
    pairDownColumnsT(q, D, Tq, D, half_, cols_ + bh * D * half_, half_);
    pairDownColumnsT(g, D, Tq, D, half_, dOCols_ + bh * D * half_, half_);
  }
  void keyBlock(const float* k, const float* v, int64_t nk) {
    const int64_t D = sh_.D, stride = sh_.KV * D;
    kt_.resize(D / 2 * BK), vt_.resize(D / 2 * BK), kb_.resize(BK / 2 * D);
    ds_.resize(BK / 2 * BQ), pairs_.resize(BQ / 2 * BK);
    pairAlongRowsT(k, stride, nk, D, BK, kt_.data(), BK);
    pairAlongRowsT(v, stride, nk, D, BK, vt_.data(), BK);
    pairDownColumns(k, stride, nk, D, kb_.data(), D);
    dKt_.assign(D * BK, 0.0f);
    dVt_.assign(D * BK, 0.0f);
  }
  void scores(int64_t bh, int64_t i0, int64_t nq, float* s) const { rowsTimesBlock(rows_, bh, i0, nq, kt_, s); }
  void dP(int64_t bh, int64_t i0, int64_t nq, float* s) const { rowsTimesBlock(dORows_, bh, i0, nq, vt_, s); }
  // (P and dS are zero past the block's nk keys: the products need no key count)
  void addDv(const float* p, int64_t bh, int64_t i0, int64_t nq, int64_t) {  // dVᵀ += dOᵀ P
    addTransposed(dOCols_, p, bh, i0, nq, dVt_);
  }
  void addDk(const float* dS, int64_t bh, int64_t i0, int64_t nq, int64_t) {  // dKᵀ += qᵀ dS
    addTransposed(cols_, dS, bh, i0, nq, dKt_);
  }
  // dS is zero past nk, so the pair that an odd nk leaves half filled adds nothing
  void addDq(const float* dS, int64_t nq, int64_t nk, float* dQ) {
    pairAlongRows(dS, BK, nq, BK, ds_.data(), BK / 2);
    tileGemmBf16(ds_.data(), BK / 2, kb_.data(), sh_.D, dQ, sh_.D, nq, sh_.D, (nk + 1) / 2, true);
  }
  void store(int64_t nk, float* dk, float* dv) const {
    for (int64_t j = 0; j < nk; j++)
      for (int64_t d = 0; d < sh_.D; d++) {
        dk[j * sh_.D + d] = dKt_[d * BK + j];
        dv[j * sh_.D + d] = dVt_[d * BK + j];
      }
  }

 private:
  // s [nq, BK] = rows i0.. of head bh of a per-head array of row pairs times a block's pairs along D, [D/2, BK]
  void rowsTimesBlock(const uint32_t* rows, int64_t bh, int64_t i0, int64_t nq, const std::vector<uint32_t>& block,
                      float* s) const {
    tileGemmBf16(rows + (bh * sh_.Tq + i0) * sh_.D / 2, sh_.D / 2, block.data(), BK, s, BK, nq, BK, sh_.D / 2, false);
  }
  // acc [D, BK] += queries i0.. of head bh of a per-head array of query pairs, transposed, times x [nq, BK] taken as
  // pairs of queries
  void addTransposed(const uint32_t* cols, const float* x, int64_t bh, int64_t i0, int64_t nq,
                     std::vector<float>& acc) {
    pairDownColumns(x, BK, nq, BK, pairs_.data(), BK);
    tileGemmBf16(cols + bh * sh_.D * half_ + i0 / 2, half_, pairs_.data(), BK, acc.data(), BK, sh_.D, BK, (nq + 1) / 2,
                 true);
  }
  // a per-head array of pairs in its scratch slot: as many words as [B*H, ceil(Tq/2) * 2, D/2] holds
  uint32_t* words(int slot) const { return scratchWords(slot, sh_.B * sh_.H * half_ * sh_.D); }
  const Shape& sh_;
  const float *qs_, *dO_;
  int64_t half_;
  uint32_t *rows_, *dORows_, *cols_, *dOCols_;
  std::vector<uint32_t> kt_, vt_, kb_, ds_, pairs_;
  std::vector<float> dKt_, dVt_;
};
#endif

template <class Tiles>
void forwardTiled(const Shape& sh, const float* q, const float* k, const float* v, float* out, float* lse) {
  const int64_t D = sh.D, nQB = (sh.Tq + BQ - 1) / BQ, nKB = (sh.Tk + BK - 1) / BK;
  const int64_t tasks = sh.B * sh.H * nQB;
  const Tiles shared(sh, k, v);
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t t = 0; t < sh.B * sh.KV * nKB; t++) shared.pack(t);
    FlushDenormals ftz;
    Tiles tiles = shared;
    std::vector<float> s(BQ * BK), p(BQ * BK), acc(BQ * D), m(BQ), l(BQ);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; task++) {
      // largest query blocks first: they have the most keys to visit
      int64_t qb = nQB - 1 - task % nQB, h = (task / nQB) % sh.H, b = task / (nQB * sh.H), g = h / sh.group();
      int64_t i0 = qb * BQ, nq = std::min(BQ, sh.Tq - i0);
      tiles.queries(q + sh.qRow(b, i0, h), nq);
      std::fill(acc.begin(), acc.end(), 0.0f);
      std::fill(m.begin(), m.end(), -INFINITY);
      std::fill(l.begin(), l.end(), 0.0f);
      int64_t kEnd = sh.keyEnd(i0, nq);
      for (int64_t j0 = sh.keyBegin(i0); j0 < kEnd; j0 += BK) {
        int64_t nk = std::min(BK, kEnd - j0);
        tiles.scores(b * sh.KV + g, j0, nq, s.data());
        if (sh.softcap > 0.0f) softcapScores(s.data(), BQ * BK, sh.softcap, nullptr);
        const bool full = nk == BK && fullyVisible(sh, i0, nq, j0, nk);
        for (int64_t i = 0; i < nq; i++) {
          float* si = s.data() + i * BK;
          float* pi = p.data() + i * BK;
          if (!full) maskRow(sh, b, i0 + i, j0, nk, BK, si, -INFINITY);
          float mNew = std::max(m[i], maxOf(si, BK));
          if (mNew == -INFINITY) {  // nothing visible yet in this row
            std::fill(pi, pi + BK, 0.0f);
            continue;
          }
          float alpha = m[i] == -INFINITY ? 0.0f : std::exp(m[i] - mNew);
          float rowSum = 0.0f;
#pragma omp simd reduction(+ : rowSum)
          for (int64_t j = 0; j < BK; j++) {
            float e = si[j] == -INFINITY ? 0.0f : exp_approx(si[j] - mNew);
            pi[j] = e;
            rowSum += e;
          }
          l[i] = l[i] * alpha + rowSum;
          m[i] = mNew;
          if (alpha != 1.0f) {
            float* a = acc.data() + i * D;
#pragma omp simd
            for (int64_t d = 0; d < D; d++) a[d] *= alpha;
          }
        }
        tiles.addValues(p.data(), b, g, j0, nk, nq, acc.data());
      }
      for (int64_t i = 0; i < nq; i++) {
        float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
        float* o = out + sh.qRow(b, i0 + i, h);
        for (int64_t d = 0; d < D; d++) o[d] = acc[i * D + d] * inv;
        if (lse) lse[(b * sh.H + h) * sh.Tq + i0 + i] = l[i] > 0.0f ? m[i] + std::log(l[i]) : INFINITY;
      }
    }
  }
}

// Tasks are (batch, query head, key block), longest first: each visits the query blocks that see its key
// block once, writes that block's dK and dV to a per-head scratch (summed over each key/value group at the
// end) and adds its dQ share into its thread's own dQ buffer (summed over threads at the end).
template <class Tiles>
void backwardTiled(const Shape& sh, const float* q, const float* k, const float* v, const float* out, const float* dout,
                   const float* lseAll, float* dq, float* dk, float* dv) {
  const int64_t D = sh.D, H = sh.H, KV = sh.KV, Tq = sh.Tq, Tk = sh.Tk, B = sh.B;
  const int64_t nKB = (Tk + BK - 1) / BK;
  const size_t headSize = static_cast<size_t>(B * H * Tq * D);
  // per head, contiguous: scaled queries, output gradients, and the softmax backward's row term
  const int nThreads = omp_get_max_threads();
  float* qs = scratch(kSlotQ, headSize);
  float* dO = scratch(kSlotDout, headSize);
  float* delta = scratch(kSlotDelta, static_cast<size_t>(B * H * Tq));
  float* dkHead = scratch(kSlotDk, static_cast<size_t>(B * H * Tk * D));
  float* dvHead = scratch(kSlotDv, static_cast<size_t>(B * H * Tk * D));
  std::vector<float*> dQ(nThreads);
  for (int t = 0; t < nThreads; t++) dQ[t] = scratch(kSlotDq + t, headSize);  // slots above kSlotDq: one per thread
  const Tiles shared(sh, qs, dO);

#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < B * Tq * H; r++) {
    int64_t h = r % H, i = (r / H) % Tq, b = r / (H * Tq);
    float* qd = qs + ((b * H + h) * Tq + i) * D;
    float* gd = dO + ((b * H + h) * Tq + i) * D;
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t d = 0; d < D; d++) {
      qd[d] = q[r * D + d] * sh.scale;
      gd[d] = dout[r * D + d];
      acc += out[r * D + d] * dout[r * D + d];
    }
    delta[(b * H + h) * Tq + i] = acc;
  }
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < B * H; bh++) shared.prepareHead(bh);

#pragma omp parallel num_threads(nThreads)
  {
    FlushDenormals ftz;
    float* myDQ = dQ[omp_get_thread_num()];
    std::fill(myDQ, myDQ + headSize, 0.0f);
    Tiles tiles = shared;
    std::vector<float> s(BQ * BK), p(BQ * BK);
    std::vector<float> slope(sh.softcap > 0.0f ? BQ * BK : 0);
    // static round-robin: each task always lands on the same thread in the same order, so the
    // per-thread dQ sums (and the whole backward) are bit-for-bit reproducible
#pragma omp for schedule(static, 1)
    for (int64_t task = 0; task < B * H * nKB; task++) {
      int64_t kbIdx = task / (B * H), bh = task % (B * H), h = bh % H, b = bh / H, g = h / sh.group();
      int64_t j0 = kbIdx * BK, nk = std::min(BK, Tk - j0);
      const float* lse = lseAll + bh * Tq;
      const float* dl = delta + bh * Tq;
      float* dQh = myDQ + bh * Tq * D;
      tiles.keyBlock(k + sh.kRow(b, j0, g), v + sh.kRow(b, j0, g), nk);
      int64_t iFirst = std::max<int64_t>(0, j0 - sh.qOffset);  // earlier queries cannot see this block
      int64_t iEnd = sh.queryEnd(j0, nk);  // later queries are past the window
      for (int64_t i0 = (iFirst / BQ) * BQ; i0 < iEnd; i0 += BQ) {
        int64_t nq = std::min(BQ, Tq - i0);
        tiles.scores(bh, i0, nq, s.data());
        if (sh.softcap > 0.0f) softcapScores(s.data(), BQ * BK, sh.softcap, slope.data());
        probabilities(sh, b, i0, nq, j0, nk, lse, s.data(), p.data());
        tiles.addDv(p.data(), bh, i0, nq, nk);
        tiles.dP(bh, i0, nq, s.data());  // s <- dP
        for (int64_t i = 0; i < nq; i++) {
          float di = dl[i0 + i];
          float* pi = p.data() + i * BK;
          const float* dpi = s.data() + i * BK;
#pragma omp simd
          for (int64_t j = 0; j < BK; j++) pi[j] *= dpi[j] - di;  // p <- dS
          if (sh.softcap > 0.0f) {
            const float* sl = slope.data() + i * BK;
#pragma omp simd
            for (int64_t j = 0; j < BK; j++) pi[j] *= sl[j];  // through the cap to the raw score
          }
        }
        tiles.addDk(p.data(), bh, i0, nq, nk);
        tiles.addDq(p.data(), nq, nk, dQh + i0 * D);
      }
      tiles.store(nk, dkHead + (bh * Tk + j0) * D, dvHead + (bh * Tk + j0) * D);
    }
  }

#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < B * Tq * H; r++) {  // dq = scale * sum over threads
    int64_t h = r % H, i = (r / H) % Tq, b = r / (H * Tq);
    size_t off = static_cast<size_t>(((b * H + h) * Tq + i) * D);
    float* o = dq + r * D;
    // the threads' shares in thread order, vectorised over the row
    std::copy(dQ[0] + off, dQ[0] + off + D, o);
    for (int t = 1; t < nThreads; t++) {
      const float* share = dQ[t] + off;
#pragma omp simd
      for (int64_t d = 0; d < D; d++) o[d] += share[d];
    }
#pragma omp simd
    for (int64_t d = 0; d < D; d++) o[d] *= sh.scale;
  }
  // dK, dV of each key/value head: the sum over the query heads that read it
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < B * Tk * KV; r++) {
    int64_t g = r % KV, j = (r / KV) % Tk, b = r / (KV * Tk);
    float* dkr = dk + r * D;
    float* dvr = dv + r * D;
    std::fill(dkr, dkr + D, 0.0f);
    std::fill(dvr, dvr + D, 0.0f);
    for (int64_t h = g * sh.group(); h < (g + 1) * sh.group(); h++) {
      const float* sk = dkHead + ((b * H + h) * Tk + j) * D;
      const float* sv = dvHead + ((b * H + h) * Tk + j) * D;
      for (int64_t d = 0; d < D; d++) {
        dkr[d] += sk[d];
        dvr[d] += sv[d];
      }
    }
  }
}
}  // namespace

// Bf16 products where the shape asks for them and this path has bf16 dot products (AVX512-BF16), for head sizes that
// fill whole vectors and more queries than decoding's (whose own path stays f32, backward as forward); elsewhere f32,
// as bf16 matmuls widen their operands where the CPU has no bf16 dot products.
void attentionForward(const float* q, const float* k, const float* v, float* out, float* lse, const AttentionShape& shape) {
  const Shape sh{shape};
  if (sh.Tq <= kDecodeQueries) {
    attentionDecode(sh, q, k, v, out, lse);
    return;
  }
#if defined(__AVX512BF16__)
  if (shape.bf16 && shape.D % 16 == 0) return forwardTiled<Bf16Forward>(sh, q, k, v, out, lse);
#endif
  forwardTiled<F32Forward>(sh, q, k, v, out, lse);
}

void attentionBackward(const float* q, const float* k, const float* v, const float* out, const float* dout, const float* lseAll,
                       float* dq, float* dk, float* dv, const AttentionShape& shape) {
  const Shape sh{shape};
#if defined(__AVX512BF16__)
  if (shape.bf16 && shape.D % 16 == 0 && sh.Tq > kDecodeQueries)
    return backwardTiled<Bf16Backward>(sh, q, k, v, out, dout, lseAll, dq, dk, dv);
#endif
  backwardTiled<F32Backward>(sh, q, k, v, out, dout, lseAll, dq, dk, dv);
}

}  // namespace LMF_ISA_NS
}  // namespace lmf
