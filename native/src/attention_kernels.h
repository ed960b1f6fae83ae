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
// Copies n strided rows into a transposed block of BK columns, [D, BK] with leading dimension ld (BK by default;
// columns n..BK are zero).
void gatherT(const float* src, int64_t stride, int64_t n, int64_t D, float* dst, int64_t ld = BK) {
  for (int64_t d = 0; d < D; d++) std::fill(dst + d * ld + n, dst + d * ld + BK, 0.0f);
  for (int64_t r = 0; r < n; r++)
    for (int64_t d = 0; d < D; d++) dst[d * ld + r] = src[r * stride + d];
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
      float m = -INFINITY;
#pragma omp simd reduction(max : m)
      for (int64_t j = 0; j < n; j++) m = std::max(m, p[j]);
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
}  // namespace

void attentionForward(const float* q, const float* k, const float* v, float* out, float* lse, const AttentionShape& shape) {
  const Shape sh{shape};
  if (sh.Tq <= kDecodeQueries) {
    attentionDecode(sh, q, k, v, out, lse);
    return;
  }
  const int64_t D = sh.D, nQB = (sh.Tq + BQ - 1) / BQ, nKB = (sh.Tk + BK - 1) / BK, keyStride = nKB * BK;
  const int64_t tasks = sh.B * sh.H * nQB;
  // K of each (batch, key/value head) transposed once, [D, nKB * BK] (zero past Tk), for every query block to read
  float* kT = scratch(kSlotKt, static_cast<size_t>(sh.B * sh.KV * D * keyStride));
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t t = 0; t < sh.B * sh.KV * nKB; t++) {
      const int64_t jb = t % nKB, g = (t / nKB) % sh.KV, b = t / (nKB * sh.KV), j0 = jb * BK;
      gatherT(k + sh.kRow(b, j0, g), sh.KV * D, std::min(BK, sh.Tk - j0), D,
              kT + (b * sh.KV + g) * D * keyStride + j0, keyStride);
    }
    FlushDenormals ftz;
    std::vector<float> qs(BQ * D), s(BQ * BK), p(BQ * BK), acc(BQ * D), m(BQ), l(BQ);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; task++) {
      // largest query blocks first: they have the most keys to visit
      int64_t qb = nQB - 1 - task % nQB, h = (task / nQB) % sh.H, b = task / (nQB * sh.H), g = h / sh.group();
      int64_t i0 = qb * BQ, nq = std::min(BQ, sh.Tq - i0);
      const float* kTh = kT + (b * sh.KV + g) * D * keyStride;
      gather(q + sh.qRow(b, i0, h), sh.H * D, nq, D, sh.scale, qs.data());
      std::fill(acc.begin(), acc.end(), 0.0f);
      std::fill(m.begin(), m.end(), -INFINITY);
      std::fill(l.begin(), l.end(), 0.0f);
      int64_t kEnd = sh.keyEnd(i0, nq);
      for (int64_t j0 = sh.keyBegin(i0); j0 < kEnd; j0 += BK) {
        int64_t nk = std::min(BK, kEnd - j0);
        tileGemm(qs.data(), D, kTh + j0, keyStride, s.data(), BK, nq, BK, D, false);
        if (sh.softcap > 0.0f) softcapScores(s.data(), BQ * BK, sh.softcap, nullptr);
        const bool full = nk == BK && fullyVisible(sh, i0, nq, j0, nk);
        for (int64_t i = 0; i < nq; i++) {
          float* si = s.data() + i * BK;
          float* pi = p.data() + i * BK;
          if (!full) maskRow(sh, b, i0 + i, j0, nk, BK, si, -INFINITY);
          float mb = -INFINITY;
#pragma omp simd reduction(max : mb)
          for (int64_t j = 0; j < BK; j++) mb = std::max(mb, si[j]);
          float mNew = std::max(m[i], mb);
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
        // P V with V's rows read in place
        tileGemm(p.data(), BK, v + sh.kRow(b, j0, g), sh.KV * D, acc.data(), D, nq, D, nk, true);
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
void attentionBackward(const float* q, const float* k, const float* v, const float* out, const float* dout, const float* lseAll,
                       float* dq, float* dk, float* dv, const AttentionShape& shape) {
  const Shape sh{shape};
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

#pragma omp parallel num_threads(nThreads)
  {
    FlushDenormals ftz;
    float* myDQ = dQ[omp_get_thread_num()];
    std::fill(myDQ, myDQ + headSize, 0.0f);
    std::vector<float> kt(D * BK), vt(D * BK), kb(BK * D), s(BQ * BK), p(BQ * BK), dK(BK * D), dV(BK * D);
    std::vector<float> slope(sh.softcap > 0.0f ? BQ * BK : 0);
    // static round-robin: each task always lands on the same thread in the same order, so the
    // per-thread dQ sums (and the whole backward) are bit-for-bit reproducible
#pragma omp for schedule(static, 1)
    for (int64_t task = 0; task < B * H * nKB; task++) {
      int64_t kbIdx = task / (B * H), bh = task % (B * H), h = bh % H, b = bh / H, g = h / sh.group();
      int64_t j0 = kbIdx * BK, nk = std::min(BK, Tk - j0);
      const float* lse = lseAll + bh * Tq;
      const float* dl = delta + bh * Tq;
      const float* qh = qs + bh * Tq * D;
      const float* dOh = dO + bh * Tq * D;
      float* dQh = myDQ + bh * Tq * D;
      gatherT(k + sh.kRow(b, j0, g), KV * D, nk, D, kt.data());
      gatherT(v + sh.kRow(b, j0, g), KV * D, nk, D, vt.data());
      gather(k + sh.kRow(b, j0, g), KV * D, nk, D, 1.0f, kb.data());
      std::fill(dK.begin(), dK.end(), 0.0f);
      std::fill(dV.begin(), dV.end(), 0.0f);
      int64_t iFirst = std::max<int64_t>(0, j0 - sh.qOffset);  // earlier queries cannot see this block
      int64_t iEnd = sh.queryEnd(j0, nk);  // later queries are past the window
      for (int64_t i0 = (iFirst / BQ) * BQ; i0 < iEnd; i0 += BQ) {
        int64_t nq = std::min(BQ, Tq - i0);
        const float* qi = qh + i0 * D;
        const float* dOi = dOh + i0 * D;
        tileGemm(qi, D, kt.data(), BK, s.data(), BK, nq, BK, D, false);
        if (sh.softcap > 0.0f) softcapScores(s.data(), BQ * BK, sh.softcap, slope.data());
        probabilities(sh, b, i0, nq, j0, nk, lse, s.data(), p.data());
        tileGemm<true>(p.data(), BK, dOi, D, dV.data(), D, nk, D, nq, true);  // dV += P^T dO
        tileGemm(dOi, D, vt.data(), BK, s.data(), BK, nq, BK, D, false);      // s <- dP = dO V^T
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
        tileGemm<true>(p.data(), BK, qi, D, dK.data(), D, nk, D, nq, true);        // dK += dS^T q (q pre-scaled)
        tileGemm(p.data(), BK, kb.data(), D, dQh + i0 * D, D, nq, D, nk, true);  // dQ += dS K
      }
      std::memcpy(dkHead + (bh * Tk + j0) * D, dK.data(), nk * D * 4);
      std::memcpy(dvHead + (bh * Tk + j0) * D, dV.data(), nk * D * 4);
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

}  // namespace LMF_ISA_NS
}  // namespace lmf
