// Qwen3.5's gated delta rule (the Gated DeltaNet's state update), in f32, in two forms:
//
//   recurrent: token by token, two passes over each head's state per token — decoding, where a call has few tokens;
//   chunked:   64-token chunks, the tokens inside a chunk solved at once as small matrix products (WY form) and the
//              state carried from chunk to chunk — training and long prompts, forward and backward.
//
// The rule, per batch row and value head h (key head h / (Hv/Hk)), state S [dk, dv]:
//   q, k L2-normalised (x * rsqrt(sum x^2 + 1e-6)), q also times dk^-0.5; beta = sigmoid(b);
//   g = -exp(A_log[h]) * softplus(a + dt_bias[h]); alpha = exp(g)
//   S' = alpha S;  delta = beta (v - S'^T k);  S = S' + k delta^T;  o = S^T q
// A token whose segment id differs from the previous token's starts from a zero state (packed sequences, padding).
//
// The chunked form, for a chunk of L tokens entering with state S0 and G_t = g_0 + ... + g_t (within the chunk):
//   Gamma_t = e^{G_t} for tokens still in the segment S0 belongs to, else 0;
//   D[t,s]  = e^{G_t - G_s} for s <= t in one segment, else 0 (the decay between two tokens);
//   A[t,s]  = beta_t D[t,s] (k_t . k_s) for s < t, and (I + A) Delta = beta (V - Gamma K S0)   (Delta: the deltas)
//   O       = Gamma (Q S0) + (D * Q K^T) Delta;   S_L = Gamma_{L-1} S0 + (w K)^T Delta,  w_s = D[L-1, s]
// with T = (I + A)^-1 formed by forward substitution, so every product over the chunk is a small matmul (tile_gemm.h).
// The backward pass recomputes a chunk from the state that entered it (kept by the forward pass, one per chunk) and
// runs the chunks in reverse, carrying the state's gradient.
//
// Work is split by (row, value head); each task's sums run in one fixed order, so results do not depend on the
// thread count. Compiled once per instruction set inside LMF_ISA_NS (native/src/isa/*.cc).
#pragma once
#ifndef LMF_ISA_NS
#error "define LMF_ISA_NS before including delta_rule_kernels.h"
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

constexpr int64_t kC = kDeltaChunk;

inline float softplusf(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }
inline float sigmoidf(float x) { return 1.0f / (1.0f + std::exp(-x)); }

struct Rule : DeltaShape {
  int64_t channels() const { return 2 * Hk * dk + Hv * dv; }
  int64_t chunks() const { return (T + kC - 1) / kC; }
  int64_t stateSize() const { return dk * dv; }
  int64_t keyHead(int64_t h) const { return h / (Hv / Hk); }
  // true when token t of batch row b starts a new segment after an earlier token of its row
  bool resetAt(const int32_t* seg, int64_t b, int64_t t) const { return t > 0 && seg && seg[b * T + t] != seg[b * T + t - 1]; }
};

// One token's gates and normalisations for one value head; its normalised q and k are written to qn, kn.
struct Gates {
  float rq, rk;  // 1/sqrt(sum x^2 + eps) of the raw q and k
  float beta, g, u;
};

inline Gates prepareToken(const Rule& s, const DeltaInputs& in, int64_t row, int64_t h, float* qn, float* kn) {
  const int64_t C = s.channels(), kh = s.keyHead(h);
  const float* q = in.qkv + row * C + kh * s.dk;
  const float* k = in.qkv + row * C + s.Hk * s.dk + kh * s.dk;
  float sq = 0, sk = 0;
  for (int64_t i = 0; i < s.dk; i++) {
    sq += q[i] * q[i];
    sk += k[i] * k[i];
  }
  Gates d;
  d.rq = 1.0f / std::sqrt(sq + 1e-6f);
  d.rk = 1.0f / std::sqrt(sk + 1e-6f);
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.dk));
  for (int64_t i = 0; i < s.dk; i++) {
    qn[i] = q[i] * d.rq * scale;
    kn[i] = k[i] * d.rk;
  }
  d.beta = sigmoidf(in.b[row * s.Hv + h]);
  d.u = in.a[row * s.Hv + h] + in.dtBias[h];
  d.g = -std::exp(in.Alog[h]) * softplusf(d.u);
  return d;
}

inline const float* valueRow(const Rule& s, const DeltaInputs& in, int64_t row, int64_t h) {
  return in.qkv + row * s.channels() + 2 * s.Hk * s.dk + h * s.dv;
}

// The chunked form's pieces.

// dst [cols, rows] (leading dimension ldd) = src [rows, cols] (leading dimension lds) transposed
inline void transpose(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
}

// One chunk of one (row, value head), recomputed from the state that entered it. Matrices over the chunk's tokens
// are [kC, kC] with rows and columns past L unused; per-token rows are [kC, dk] or [kC, dv].
struct Chunk {
  int64_t L = 0;
  bool zeroState = false;  // the entering state is zero (row start, or a segment starts at the chunk's first token)
  std::vector<float> Q, K, KT, Kw;          // normalised q and k [kC, dk]; K transposed [dk, kC]; w K [kC, dk]
  std::vector<Gates> gate;                  // [kC]
  std::vector<float> gamma, w;              // Gamma_t, and w_s = D[L-1, s]  [kC]
  std::vector<float> D, QK, W, KK, Tinv;    // [kC, kC]; W = D * Q K^T
  std::vector<float> KS, R, Delta;          // K S0, the right-hand side beta (V - Gamma K S0), the deltas  [kC, dv]
  std::vector<uint8_t> zeroEntering;        // per token: the state entering it is zero, so its decay acts on nothing
  std::vector<float> G;                     // the cumulative decay since the chunk's or the token's segment's start
  std::vector<int64_t> segStart;            // first token of t's segment within the chunk (0 when it began earlier)

  explicit Chunk(const Rule& s)
      : Q(kC * s.dk), K(kC * s.dk), KT(s.dk * kC), Kw(kC * s.dk), gate(kC), gamma(kC), w(kC), D(kC * kC),
        QK(kC * kC), W(kC * kC), KK(kC * kC), Tinv(kC * kC), KS(kC * s.dv), R(kC * s.dv), Delta(kC * s.dv),
        zeroEntering(kC), G(kC), segStart(kC) {}

  // Gates, normalised q and k, the decays (Gamma, D, w) of tokens t0 .. t0+len-1 of row b, and w K.
  void prepare(const Rule& s, const DeltaInputs& in, int64_t b, int64_t h, int64_t t0, int64_t len, bool zeroAtStart) {
    L = len;
    zeroState = zeroAtStart;
    float cumulative = 0;
    for (int64_t t = 0; t < L; t++) {
      const int64_t row = b * s.T + t0 + t;
      gate[t] = prepareToken(s, in, row, h, &Q[t * s.dk], &K[t * s.dk]);
      const bool reset = t == 0 ? zeroAtStart : s.resetAt(in.seg, b, t0 + t);
      zeroEntering[t] = reset;
      segStart[t] = reset ? t : (t == 0 ? 0 : segStart[t - 1]);
      // a decay applied to a zero state changes nothing: a new segment's sum starts at 0 without it (only
      // differences within a segment are read)
      cumulative = reset ? 0.0f : cumulative + gate[t].g;
      G[t] = cumulative;
      // S0 reaches the tokens before the chunk's first reset
      gamma[t] = !zeroAtStart && segStart[t] == 0 ? std::exp(G[t]) : 0.0f;
    }
    for (int64_t t = 0; t < L; t++) {
      const float Gt = G[t];
      const int64_t first = segStart[t];
      float* row = &D[t * kC];
#pragma omp simd
      for (int64_t u = 0; u < L; u++) {
        const float e = exp_approx(Gt - G[u]);
        row[u] = u >= first && u <= t ? e : 0.0f;
      }
    }
    for (int64_t u = 0; u < L; u++) w[u] = D[(L - 1) * kC + u];
    for (int64_t t = 0; t < L; t++)
      for (int64_t i = 0; i < s.dk; i++) Kw[t * s.dk + i] = K[t * s.dk + i] * w[t];
    transpose(K.data(), s.dk, L, s.dk, KT.data(), kC);
  }

  // From the entering state S0: K S0, the right-hand side, A inverted (Tinv) and the deltas; Q K^T and W.
  void solve(const Rule& s, const DeltaInputs& in, int64_t b, int64_t h, int64_t t0, const float* S0) {
    const int64_t dk = s.dk, dv = s.dv;
    if (zeroState) std::fill(KS.begin(), KS.begin() + L * dv, 0.0f);
    else tileGemm(K.data(), dk, S0, dv, KS.data(), dv, L, dv, dk, false);
    for (int64_t t = 0; t < L; t++) {
      const float* v = valueRow(s, in, b * s.T + t0 + t, h);
      const float beta = gate[t].beta, gm = gamma[t];
      for (int64_t j = 0; j < dv; j++) R[t * dv + j] = beta * (v[j] - gm * KS[t * dv + j]);
    }
    tileGemm(K.data(), dk, KT.data(), kC, KK.data(), kC, L, L, dk, false);
    tileGemm(Q.data(), dk, KT.data(), kC, QK.data(), kC, L, L, dk, false);
    for (int64_t i = 0; i < L * kC; i++) W[i] = D[i] * QK[i];
    // Tinv = (I + A)^-1, unit lower triangular, row by row: Tinv[t] = e_t - sum_{u<t} A[t,u] Tinv[u]
    for (int64_t t = 0; t < L; t++) {
      float* row = &Tinv[t * kC];
      std::fill(row, row + L, 0.0f);
      row[t] = 1.0f;
      for (int64_t u = 0; u < t; u++) {
        const float a = A(t, u);
        if (a == 0.0f) continue;
        const float* prev = &Tinv[u * kC];
        for (int64_t c = 0; c <= u; c++) row[c] -= a * prev[c];
      }
    }
    tileGemm(Tinv.data(), kC, R.data(), dv, Delta.data(), dv, L, dv, L, false);
  }

  // A[t,u] for u < t
  float A(int64_t t, int64_t u) const { return gate[t].beta * D[t * kC + u] * KK[t * kC + u]; }
};

// Whether chunk c of row b enters with a zero state: the row's first chunk without an initial state, or a chunk
// whose first token starts a segment.
inline bool chunkStartsZero(const Rule& s, const DeltaInputs& in, int64_t b, int64_t c, bool hasInit) {
  return c == 0 ? !hasInit : s.resetAt(in.seg, b, c * kC);
}

}  // namespace

// ---- recurrent form ----------------------------------------------------------------------------------------------

void deltaRecurrentForward(const DeltaShape& shape, const DeltaInputs& in, float* out, const float* initState,
                           float* finalState) {
  const Rule s{shape};
  const int64_t SS = s.stateSize(), dk = s.dk, dv = s.dv;
#pragma omp parallel
  {
    FlushDenormals ftz;
    std::vector<float> S(SS), qn(dk), kn(dk), recalled(dv), delta(dv);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < s.B * s.Hv; bh++) {
      const int64_t b = bh / s.Hv, h = bh % s.Hv;
      if (initState) std::copy(initState + bh * SS, initState + (bh + 1) * SS, S.begin());
      else std::fill(S.begin(), S.end(), 0.0f);
      for (int64_t t = 0; t < s.T; t++) {
        const int64_t row = b * s.T + t;
        if (s.resetAt(in.seg, b, t)) std::fill(S.begin(), S.end(), 0.0f);
        const Gates d = prepareToken(s, in, row, h, qn.data(), kn.data());
        const float alpha = std::exp(d.g), *v = valueRow(s, in, row, h);
        // pass 1: decay the state and recall the value stored under k
        std::fill(recalled.begin(), recalled.end(), 0.0f);
        for (int64_t i = 0; i < dk; i++) {
          float* r = S.data() + i * dv;
          const float ki = kn[i];
#pragma omp simd
          for (int64_t j = 0; j < dv; j++) {
            r[j] *= alpha;
            recalled[j] += ki * r[j];
          }
        }
        for (int64_t j = 0; j < dv; j++) delta[j] = d.beta * (v[j] - recalled[j]);
        // pass 2: write the correction and read the output
        float* o = out + row * s.Hv * dv + h * dv;
        std::fill(o, o + dv, 0.0f);
        for (int64_t i = 0; i < dk; i++) {
          float* r = S.data() + i * dv;
          const float ki = kn[i], qi = qn[i];
#pragma omp simd
          for (int64_t j = 0; j < dv; j++) {
            r[j] += ki * delta[j];
            o[j] += qi * r[j];
          }
        }
      }
      if (finalState) std::copy(S.begin(), S.end(), finalState + bh * SS);
    }
  }
}

// ---- chunked form ------------------------------------------------------------------------------------------------

void deltaChunkedForward(const DeltaShape& shape, const DeltaInputs& in, float* out, float* checkpoints,
                         const float* initState, float* finalState) {
  const Rule s{shape};
  const int64_t SS = s.stateSize(), dk = s.dk, dv = s.dv, ldo = s.Hv * dv;
#pragma omp parallel
  {
    FlushDenormals ftz;
    Chunk ch(s);
    std::vector<float> S(SS);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < s.B * s.Hv; bh++) {
      const int64_t b = bh / s.Hv, h = bh % s.Hv;
      if (initState) std::copy(initState + bh * SS, initState + (bh + 1) * SS, S.begin());
      for (int64_t c = 0; c < s.chunks(); c++) {
        const int64_t t0 = c * kC, L = std::min(kC, s.T - t0);
        const bool zero = chunkStartsZero(s, in, b, c, initState != nullptr);
        if (zero) std::fill(S.begin(), S.end(), 0.0f);
        if (checkpoints) std::copy(S.begin(), S.end(), checkpoints + (bh * s.chunks() + c) * SS);
        ch.prepare(s, in, b, h, t0, L, zero);
        ch.solve(s, in, b, h, t0, S.data());
        // O = Gamma (Q S0) + (D * Q K^T) Delta
        float* O = out + (b * s.T + t0) * ldo + h * dv;
        if (zero) {
          for (int64_t t = 0; t < L; t++) std::fill(O + t * ldo, O + t * ldo + dv, 0.0f);
        } else {
          tileGemm(ch.Q.data(), dk, S.data(), dv, O, ldo, L, dv, dk, false);
          for (int64_t t = 0; t < L; t++)
            for (int64_t j = 0; j < dv; j++) O[t * ldo + j] *= ch.gamma[t];
        }
        tileGemm(ch.W.data(), kC, ch.Delta.data(), dv, O, ldo, L, dv, L, true);
        // S_L = Gamma_{L-1} S0 + (w K)^T Delta
        const float carry = ch.gamma[L - 1];
        for (int64_t i = 0; i < SS; i++) S[i] *= carry;
        tileGemm<true>(ch.Kw.data(), dk, ch.Delta.data(), dv, S.data(), dv, dk, dv, L, true);
      }
      if (finalState) std::copy(S.begin(), S.end(), finalState + bh * SS);
    }
  }
}

// Gradients of deltaChunkedForward started from a zero state (training) from dout, given its checkpoints.
void deltaChunkedBackward(const DeltaShape& shape, const DeltaInputs& in, const float* dout, const float* checkpoints,
                          float* dqkv, float* db, float* da, float* dAlog, float* ddtBias) {
  const Rule s{shape};
  const int64_t SS = s.stateSize(), dk = s.dk, dv = s.dv, C = s.channels(), N = s.B * s.T, ldo = s.Hv * dv;
  const int64_t group = s.Hv / s.Hk;
  // q and k gradients per value head, summed over each key head's group afterwards in head order
  std::vector<float> dqk(N * s.Hv * 2 * dk);
  std::vector<double> dAlogPart(s.B * s.Hv), ddtPart(s.B * s.Hv);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dk));
#pragma omp parallel
  {
    FlushDenormals ftz;
    Chunk ch(s);
    std::vector<float> dS(SS), dSin(SS), S0T(dv * dk), dST(dv * dk), DeltaT(dv * kC), P(kC * dv);
    std::vector<float> dW(kC * kC), dA(kC * kC), dKK(kC * kC), dQK(kC * kC);
    std::vector<float> dDelta(kC * dv), dR(kC * dv), dP(kC * dv), dKS(kC * dv), dQ(kC * dk), dK(kC * dk), dKw(kC * dk);
    std::vector<float> dgamma(kC), dw(kC), dG(kC), dbeta(kC);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < s.B * s.Hv; bh++) {
      const int64_t b = bh / s.Hv, h = bh % s.Hv;
      double accAlog = 0, accDt = 0;
      std::fill(dS.begin(), dS.end(), 0.0f);
      for (int64_t c = s.chunks() - 1; c >= 0; c--) {
        const int64_t t0 = c * kC, L = std::min(kC, s.T - t0);
        const float* S0 = checkpoints + (bh * s.chunks() + c) * SS;
        ch.prepare(s, in, b, h, t0, L, chunkStartsZero(s, in, b, c, false));
        ch.solve(s, in, b, h, t0, S0);
        const float* dO = dout + (b * s.T + t0) * ldo + h * dv;
        // the deltas feed the outputs through W and the leaving state through (w K)^T
        tileGemm<true>(ch.W.data(), kC, dO, ldo, dDelta.data(), dv, L, dv, L, false);
        tileGemm(ch.Kw.data(), dk, dS.data(), dv, dDelta.data(), dv, L, dv, dk, true);
        transpose(ch.Delta.data(), dv, L, dv, DeltaT.data(), kC);
        tileGemm(dO, ldo, DeltaT.data(), kC, dW.data(), kC, L, L, dv, false);
        transpose(dS.data(), dv, dk, dv, dST.data(), dk);
        tileGemm(ch.Delta.data(), dv, dST.data(), dk, dKw.data(), dk, L, dk, dv, false);
        for (int64_t t = 0; t < L; t++) {
          float dot = 0;
          for (int64_t i = 0; i < dk; i++) {
            dK[t * dk + i] = ch.w[t] * dKw[t * dk + i];
            dot += ch.K[t * dk + i] * dKw[t * dk + i];
          }
          dw[t] = dot;
        }
        // the entering state: through Gamma (Q S0), K S0 and Gamma_{L-1} S0
        float dCarry = 0;
        if (ch.zeroState) {
          std::fill(dgamma.begin(), dgamma.end(), 0.0f);
          std::fill(dQ.begin(), dQ.begin() + L * dk, 0.0f);
          std::fill(dSin.begin(), dSin.end(), 0.0f);
        } else {
          transpose(S0, dv, dk, dv, S0T.data(), dk);
          tileGemm(ch.Q.data(), dk, S0, dv, P.data(), dv, L, dv, dk, false);
          for (int64_t t = 0; t < L; t++) {
            float dot = 0;
            for (int64_t j = 0; j < dv; j++) {
              dot += dO[t * ldo + j] * P[t * dv + j];
              dP[t * dv + j] = ch.gamma[t] * dO[t * ldo + j];
            }
            dgamma[t] = dot;
          }
          tileGemm(dP.data(), dv, S0T.data(), dk, dQ.data(), dk, L, dk, dv, false);
          tileGemm<true>(ch.Q.data(), dk, dP.data(), dv, dSin.data(), dv, dk, dv, L, false);
          const float carry = ch.gamma[L - 1];
          for (int64_t i = 0; i < SS; i++) {
            dCarry += dS[i] * S0[i];
            dSin[i] += carry * dS[i];
          }
        }
        dgamma[L - 1] += dCarry;
        // through the solve: dR = Tinv^T dDelta, dA = -dR Delta^T (below the diagonal)
        tileGemm<true>(ch.Tinv.data(), kC, dDelta.data(), dv, dR.data(), dv, L, dv, L, false);
        tileGemm(dR.data(), dv, DeltaT.data(), kC, dA.data(), kC, L, L, dv, false);
        // the right-hand side beta (V - Gamma K S0)
        for (int64_t t = 0; t < L; t++) {
          const int64_t row = b * s.T + t0 + t;
          const float* v = valueRow(s, in, row, h);
          float* dv_out = dqkv + row * C + 2 * s.Hk * dk + h * dv;
          const float beta = ch.gate[t].beta, gm = ch.gamma[t];
          float sb = 0, sg = 0;
          for (int64_t j = 0; j < dv; j++) {
            const float r = dR[t * dv + j], ks = ch.KS[t * dv + j];
            dv_out[j] = beta * r;
            sb += r * (v[j] - gm * ks);
            sg += r * ks;
            dKS[t * dv + j] = -beta * gm * r;
          }
          dbeta[t] = sb;
          dgamma[t] -= beta * sg;
        }
        if (!ch.zeroState) {
          tileGemm(dKS.data(), dv, S0T.data(), dk, dK.data(), dk, L, dk, dv, true);
          tileGemm<true>(ch.K.data(), dk, dKS.data(), dv, dSin.data(), dv, dk, dv, L, true);
        }
        // A[t,u] = beta_t D[t,u] (k_t . k_u) and W = D * Q K^T, into dbeta, the decays (dD, kept in dA) and dKK, dQK
        for (int64_t t = 0; t < L; t++) {
          const float beta = ch.gate[t].beta;
          float sb = 0;
          for (int64_t u = 0; u < L; u++) {
            const int64_t i = t * kC + u;
            const float e = u < t ? -dA[i] : 0.0f, d = ch.D[i];
            sb += e * d * ch.KK[i];
            dKK[i] = e * beta * d;
            dQK[i] = d * dW[i];
            dA[i] = e * beta * ch.KK[i] + ch.QK[i] * dW[i];  // now dD
          }
          dbeta[t] += sb;
        }
        tileGemm(dKK.data(), kC, ch.K.data(), dk, dK.data(), dk, L, dk, L, true);
        tileGemm<true>(dKK.data(), kC, ch.K.data(), dk, dK.data(), dk, L, dk, L, true);
        tileGemm(dQK.data(), kC, ch.K.data(), dk, dQ.data(), dk, L, dk, L, true);
        tileGemm<true>(dQK.data(), kC, ch.Q.data(), dk, dK.data(), dk, L, dk, L, true);
        // the cumulative decays G: D[t,u] = e^{G_t - G_u}, Gamma_t = e^{G_t}, w_u = D[L-1, u]
        std::fill(dG.begin(), dG.begin() + L, 0.0f);
        for (int64_t t = 0; t < L; t++)
          for (int64_t u = 0; u <= t; u++) {
            const float x = dA[t * kC + u] * ch.D[t * kC + u];
            dG[t] += x;
            dG[u] -= x;
          }
        for (int64_t t = 0; t < L; t++) {
          dG[t] += dgamma[t] * ch.gamma[t] - dw[t] * ch.w[t];
          dG[L - 1] += dw[t] * ch.w[t];
        }
        // per token: g = -exp(A_log) softplus(a + dt_bias) (dg = sum of dG from t to its segment's end), beta, the
        // L2 normalisations
        const float expA = std::exp(in.Alog[h]);
        float dg = 0;
        for (int64_t t = L - 1; t >= 0; t--) {
          const int64_t row = b * s.T + t0 + t;
          const Gates& d = ch.gate[t];
          dg += dG[t];
          const float dgTok = ch.zeroEntering[t] ? 0.0f : dg;
          if (ch.zeroEntering[t]) dg = 0;  // G restarts here: earlier tokens' decays reach no later token
          accAlog += static_cast<double>(dgTok) * d.g;
          const float du = dgTok * -expA * sigmoidf(d.u);
          da[row * s.Hv + h] = du;
          accDt += du;
          db[row * s.Hv + h] = dbeta[t] * d.beta * (1.0f - d.beta);
          const int64_t kh = s.keyHead(h);
          const float* qraw = in.qkv + row * C + kh * dk;
          const float* kraw = in.qkv + row * C + s.Hk * dk + kh * dk;
          const float *dqn = &dQ[t * dk], *dkn = &dK[t * dk];
          float xq = 0, xk = 0;
          for (int64_t i = 0; i < dk; i++) {
            xq += qraw[i] * dqn[i];
            xk += kraw[i] * dkn[i];
          }
          // y = x r  =>  dx = r dy - r^3 (x . dy) x
          const float cq = d.rq * d.rq * d.rq * xq * scale, ck = d.rk * d.rk * d.rk * xk;
          float* dq = dqk.data() + (row * s.Hv + h) * 2 * dk;
          float* dkk = dq + dk;
          for (int64_t i = 0; i < dk; i++) {
            dq[i] = scale * d.rq * dqn[i] - cq * qraw[i];
            dkk[i] = d.rk * dkn[i] - ck * kraw[i];
          }
        }
        // the state entering this chunk is the previous chunk's leaving state, unless it was reset to zero
        if (ch.zeroState) std::fill(dS.begin(), dS.end(), 0.0f);
        else std::copy(dSin.begin(), dSin.end(), dS.begin());
      }
      dAlogPart[bh] = accAlog;
      ddtPart[bh] = accDt;
    }
  }
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < N; row++)
    for (int64_t kh = 0; kh < s.Hk; kh++) {
      float* dq = dqkv + row * C + kh * dk;
      float* dkk = dqkv + row * C + s.Hk * dk + kh * dk;
      std::fill(dq, dq + dk, 0.0f);
      std::fill(dkk, dkk + dk, 0.0f);
      for (int64_t h = kh * group; h < (kh + 1) * group; h++) {
        const float* src = dqk.data() + (row * s.Hv + h) * 2 * dk;
        for (int64_t i = 0; i < dk; i++) {
          dq[i] += src[i];
          dkk[i] += src[dk + i];
        }
      }
    }
  for (int64_t h = 0; h < s.Hv; h++) {
    double a = 0, t = 0;
    for (int64_t b = 0; b < s.B; b++) {
      a += dAlogPart[b * s.Hv + h];
      t += ddtPart[b * s.Hv + h];
    }
    dAlog[h] += static_cast<float>(a);
    ddtBias[h] += static_cast<float>(t);
  }
}

}  // namespace LMF_ISA_NS
}  // namespace lmf
