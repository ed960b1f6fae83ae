// Causal grouped-query attention, tiled in blocks of queries and keys with an online softmax, so the
// T×T score matrix never exists. The forward pass keeps only the log-sum-exp of each query row; the
// backward pass recomputes the scores block by block from it.
//
// Layouts: q, out, dq [B, Tq, H, D]; k, v, dk, dv [B, Tk, KV, D]; lse [B, H, Tq].
// Query i (0-based) stands at key position i + qOffset; it sees key j when j <= i + qOffset and, when
// segment ids are given, when both tokens belong to the same segment (packed sequences, padding).
// Query head h reads key/value head h / (H / KV), as Hugging Face's repeat_kv.
#include <omp.h>
#include <algorithm>
#include <cmath>
#include <vector>
#include "common.h"
#include "vecmath.h"

namespace lmf {

namespace {
constexpr int64_t BQ = 64, BK = 64;

struct Shape {
  int64_t B, Tq, Tk, H, KV, D, qOffset;
  const int32_t* segQ;
  const int32_t* segK;
  float scale;
  int64_t group() const { return H / KV; }
  int64_t qRow(int64_t b, int64_t i, int64_t h) const { return ((b * Tq + i) * H + h) * D; }
  int64_t kRow(int64_t b, int64_t j, int64_t g) const { return ((b * Tk + j) * KV + g) * D; }
  bool visible(int64_t b, int64_t i, int64_t j) const {
    return j <= i + qOffset && (!segQ || segQ[b * Tq + i] == segK[b * Tk + j]);
  }
  // Number of keys the last query of [i0, i0+n) can see: the key range a query block has to visit.
  int64_t keyEnd(int64_t i0, int64_t n) const { return std::min(Tk, i0 + n + qOffset); }
};

// Copies n rows of D values, strided by `stride`, into a contiguous [n, D] block, times `mul`.
void gather(const float* src, int64_t stride, int64_t n, int64_t D, float mul, float* dst) {
  for (int64_t r = 0; r < n; r++)
    for (int64_t d = 0; d < D; d++) dst[r * D + d] = src[r * stride + d] * mul;
}
// Copies n strided rows into a transposed [D, BK] block (columns past n are zero).
void gatherT(const float* src, int64_t stride, int64_t n, int64_t D, float* dst) {
  std::fill(dst, dst + D * BK, 0.0f);
  for (int64_t r = 0; r < n; r++)
    for (int64_t d = 0; d < D; d++) dst[d * BK + r] = src[r * stride + d];
}
// S[nq, BK] = A[nq, D] · Bt[D, BK]
void blockScores(const float* A, const float* Bt, int64_t nq, int64_t D, float* S) {
  for (int64_t i = 0; i < nq; i++) {
    float s[BK] = {0};
    for (int64_t d = 0; d < D; d++) {
      float a = A[i * D + d];
      const float* b = Bt + d * BK;
#pragma omp simd
      for (int64_t j = 0; j < BK; j++) s[j] += a * b[j];
    }
    std::memcpy(S + i * BK, s, sizeof(s));
  }
}
// Out[nq, D] += P[nq, BK(nk used)] · V[nk, D]
void blockPV(const float* P, const float* V, int64_t nq, int64_t nk, int64_t D, float* out) {
  for (int64_t i = 0; i < nq; i++) {
    float* o = out + i * D;
    for (int64_t j = 0; j < nk; j++) {
      float p = P[i * BK + j];
      if (p == 0.0f) continue;
      const float* v = V + j * D;
#pragma omp simd
      for (int64_t d = 0; d < D; d++) o[d] += p * v[d];
    }
  }
}
// Out[nk, D] += P^T · A where P is [nq, BK] and A is [nq, D]
void blockPtA(const float* P, const float* A, int64_t nq, int64_t nk, int64_t D, float* out) {
  for (int64_t j = 0; j < nk; j++) {
    float* o = out + j * D;
    for (int64_t i = 0; i < nq; i++) {
      float p = P[i * BK + j];
      if (p == 0.0f) continue;
      const float* a = A + i * D;
#pragma omp simd
      for (int64_t d = 0; d < D; d++) o[d] += p * a[d];
    }
  }
}

// Per-thread scratch for one query block and one key block.
struct Scratch {
  std::vector<float> q, dO, k, kt, vt, v, s, p, acc;
  explicit Scratch(int64_t D)
      : q(BQ * D), dO(BQ * D), k(BK * D), kt(D * BK), vt(D * BK), v(BK * D), s(BQ * BK), p(BQ * BK), acc(BQ * D) {}
};

// P = exp(S - lse) on visible entries, 0 elsewhere; then, with dP given, dS = P * (dP - delta).
void probabilities(const Shape& sh, int64_t b, int64_t i0, int64_t nq, int64_t j0, int64_t nk, const float* lse,
                   const float* S, float* P) {
  for (int64_t i = 0; i < nq; i++) {
    float l = lse[i0 + i];
    const float* s = S + i * BK;
    float* p = P + i * BK;
#pragma omp simd
    for (int64_t j = 0; j < BK; j++) p[j] = exp_approx(s[j] - l);
    for (int64_t j = 0; j < BK; j++)
      if (j >= nk || !sh.visible(b, i0 + i, j0 + j)) p[j] = 0.0f;
  }
}
}  // namespace

// attentionForward(q, k, v, out, lse|null, B, Tq, Tk, H, KV, D, qOffset, segQ|null, segK|null, scale)
static Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  const float* q = ptr<float>(info[0]);
  const float* k = ptr<float>(info[1]);
  const float* v = ptr<float>(info[2]);
  float* out = ptr<float>(info[3]);
  float* lse = ptr<float>(info[4]);
  Shape sh{i64(info[5]), i64(info[6]), i64(info[7]), i64(info[8]), i64(info[9]), i64(info[10]), i64(info[11]),
           ptr<int32_t>(info[12]), ptr<int32_t>(info[13]), static_cast<float>(f64(info[14]))};
  const int64_t D = sh.D, nQB = (sh.Tq + BQ - 1) / BQ;
  const int64_t tasks = sh.B * sh.H * nQB;
#pragma omp parallel
  {
    Scratch w(D);
    std::vector<float> m(BQ), l(BQ);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; task++) {
      int64_t qb = task % nQB, h = (task / nQB) % sh.H, b = task / (nQB * sh.H), g = h / sh.group();
      int64_t i0 = qb * BQ, nq = std::min(BQ, sh.Tq - i0);
      gather(q + sh.qRow(b, i0, h), sh.H * D, nq, D, sh.scale, w.q.data());
      std::fill(w.acc.begin(), w.acc.end(), 0.0f);
      std::fill(m.begin(), m.end(), -INFINITY);
      std::fill(l.begin(), l.end(), 0.0f);
      int64_t kEnd = sh.keyEnd(i0, nq);
      for (int64_t j0 = 0; j0 < kEnd; j0 += BK) {
        int64_t nk = std::min(BK, kEnd - j0);
        gatherT(k + sh.kRow(b, j0, g), sh.KV * D, nk, D, w.kt.data());
        gather(v + sh.kRow(b, j0, g), sh.KV * D, nk, D, 1.0f, w.v.data());
        blockScores(w.q.data(), w.kt.data(), nq, D, w.s.data());
        for (int64_t i = 0; i < nq; i++) {
          float* s = w.s.data() + i * BK;
          float* p = w.p.data() + i * BK;
          float mb = -INFINITY;
          for (int64_t j = 0; j < BK; j++) {
            if (j >= nk || !sh.visible(b, i0 + i, j0 + j)) s[j] = -INFINITY;
            mb = std::max(mb, s[j]);
          }
          float mNew = std::max(m[i], mb);
          if (mNew == -INFINITY) {  // nothing visible yet in this row
            std::fill(p, p + BK, 0.0f);
            continue;
          }
          float alpha = m[i] == -INFINITY ? 0.0f : std::exp(m[i] - mNew);
          float rowSum = 0.0f;
#pragma omp simd reduction(+ : rowSum)
          for (int64_t j = 0; j < BK; j++) {
            float e = s[j] == -INFINITY ? 0.0f : exp_approx(s[j] - mNew);
            p[j] = e;
            rowSum += e;
          }
          l[i] = l[i] * alpha + rowSum;
          m[i] = mNew;
          float* a = w.acc.data() + i * D;
#pragma omp simd
          for (int64_t d = 0; d < D; d++) a[d] *= alpha;
        }
        blockPV(w.p.data(), w.v.data(), nq, nk, D, w.acc.data());
      }
      for (int64_t i = 0; i < nq; i++) {
        float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
        float* o = out + sh.qRow(b, i0 + i, h);
        for (int64_t d = 0; d < D; d++) o[d] = w.acc[i * D + d] * inv;
        if (lse) lse[(b * sh.H + h) * sh.Tq + i0 + i] = l[i] > 0.0f ? m[i] + std::log(l[i]) : INFINITY;
      }
    }
  }
  return info.Env().Undefined();
}

// attentionBackward(q, k, v, out, dout, lse, dq, dk, dv, B, Tq, Tk, H, KV, D, qOffset, segQ, segK, scale)
// Two passes, each with enough independent tasks to keep every thread busy: (1) per key block of each
// key/value head, dK and dV summed over the query heads of its group; (2) per query block, dQ.
static Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  const float* q = ptr<float>(info[0]);
  const float* k = ptr<float>(info[1]);
  const float* v = ptr<float>(info[2]);
  const float* out = ptr<float>(info[3]);
  const float* dout = ptr<float>(info[4]);
  const float* lseAll = ptr<float>(info[5]);
  float* dq = ptr<float>(info[6]);
  float* dk = ptr<float>(info[7]);
  float* dv = ptr<float>(info[8]);
  Shape sh{i64(info[9]), i64(info[10]), i64(info[11]), i64(info[12]), i64(info[13]), i64(info[14]), i64(info[15]),
           ptr<int32_t>(info[16]), ptr<int32_t>(info[17]), static_cast<float>(f64(info[18]))};
  const int64_t D = sh.D, H = sh.H, KV = sh.KV, Tq = sh.Tq, Tk = sh.Tk;
  const int64_t nQB = (Tq + BQ - 1) / BQ, nKB = (Tk + BK - 1) / BK;

  // delta[b,h,i] = sum_d dout * out: the softmax backward's row term
  std::vector<float> delta(static_cast<size_t>(sh.B * H * Tq));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < sh.B * Tq * H; r++) {
    int64_t h = r % H, i = (r / H) % Tq, b = r / (H * Tq);
    const float* o = out + r * D;
    const float* g = dout + r * D;
    float s = 0.0f;
    for (int64_t d = 0; d < D; d++) s += o[d] * g[d];
    delta[(b * H + h) * Tq + i] = s;
  }

  // Pass 1: dK, dV
#pragma omp parallel
  {
    Scratch w(D);
    std::vector<float> dK(BK * D), dV(BK * D);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < sh.B * KV * nKB; task++) {
      int64_t kb = task % nKB, g = (task / nKB) % KV, b = task / (nKB * KV);
      int64_t j0 = kb * BK, nk = std::min(BK, Tk - j0);
      gatherT(k + sh.kRow(b, j0, g), KV * D, nk, D, w.kt.data());
      gatherT(v + sh.kRow(b, j0, g), KV * D, nk, D, w.vt.data());
      std::fill(dK.begin(), dK.end(), 0.0f);
      std::fill(dV.begin(), dV.end(), 0.0f);
      int64_t iFirst = std::max<int64_t>(0, j0 - sh.qOffset);  // earlier queries cannot see this block
      for (int64_t h = g * sh.group(); h < (g + 1) * sh.group(); h++) {
        const float* lse = lseAll + (b * H + h) * Tq;
        const float* dl = delta.data() + (b * H + h) * Tq;
        for (int64_t i0 = (iFirst / BQ) * BQ; i0 < Tq; i0 += BQ) {
          int64_t nq = std::min(BQ, Tq - i0);
          gather(q + sh.qRow(b, i0, h), H * D, nq, D, sh.scale, w.q.data());
          gather(dout + sh.qRow(b, i0, h), H * D, nq, D, 1.0f, w.dO.data());
          blockScores(w.q.data(), w.kt.data(), nq, D, w.s.data());
          probabilities(sh, b, i0, nq, j0, nk, lse, w.s.data(), w.p.data());
          blockPtA(w.p.data(), w.dO.data(), nq, nk, D, dV.data());
          blockScores(w.dO.data(), w.vt.data(), nq, D, w.s.data());  // s <- dP
          for (int64_t i = 0; i < nq; i++)
            for (int64_t j = 0; j < BK; j++) w.p[i * BK + j] *= w.s[i * BK + j] - dl[i0 + i];  // p <- dS
          blockPtA(w.p.data(), w.q.data(), nq, nk, D, dK.data());  // q is pre-scaled: dK = scale * dS^T q
        }
      }
      for (int64_t j = 0; j < nk; j++) {
        std::memcpy(dk + sh.kRow(b, j0 + j, g), dK.data() + j * D, D * 4);
        std::memcpy(dv + sh.kRow(b, j0 + j, g), dV.data() + j * D, D * 4);
      }
    }
  }

  // Pass 2: dQ
#pragma omp parallel
  {
    Scratch w(D);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < sh.B * H * nQB; task++) {
      int64_t qb = task % nQB, h = (task / nQB) % H, b = task / (nQB * H), g = h / sh.group();
      int64_t i0 = qb * BQ, nq = std::min(BQ, Tq - i0);
      const float* lse = lseAll + (b * H + h) * Tq;
      const float* dl = delta.data() + (b * H + h) * Tq;
      gather(q + sh.qRow(b, i0, h), H * D, nq, D, sh.scale, w.q.data());
      gather(dout + sh.qRow(b, i0, h), H * D, nq, D, 1.0f, w.dO.data());
      std::fill(w.acc.begin(), w.acc.end(), 0.0f);
      int64_t kEnd = sh.keyEnd(i0, nq);
      for (int64_t j0 = 0; j0 < kEnd; j0 += BK) {
        int64_t nk = std::min(BK, kEnd - j0);
        gatherT(k + sh.kRow(b, j0, g), KV * D, nk, D, w.kt.data());
        gatherT(v + sh.kRow(b, j0, g), KV * D, nk, D, w.vt.data());
        gather(k + sh.kRow(b, j0, g), KV * D, nk, D, 1.0f, w.k.data());
        blockScores(w.q.data(), w.kt.data(), nq, D, w.s.data());
        probabilities(sh, b, i0, nq, j0, nk, lse, w.s.data(), w.p.data());
        blockScores(w.dO.data(), w.vt.data(), nq, D, w.s.data());
        for (int64_t i = 0; i < nq; i++)
          for (int64_t j = 0; j < BK; j++) w.p[i * BK + j] *= w.s[i * BK + j] - dl[i0 + i];
        blockPV(w.p.data(), w.k.data(), nq, nk, D, w.acc.data());
      }
      for (int64_t i = 0; i < nq; i++) {
        float* o = dq + sh.qRow(b, i0 + i, h);
        for (int64_t d = 0; d < D; d++) o[d] = w.acc[i * D + d] * sh.scale;
      }
    }
  }
  return info.Env().Undefined();
}

void registerAttention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionForward", Napi::Function::New(env, AttentionForward));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward));
}

}  // namespace lmf
