// Qwen3.5's Gated DeltaNet token mixer: the causal depthwise convolution with SiLU in front of it, and the gated
// delta rule, forward and backward, in f32.
//
// Layout: activations are rows of tokens, [B*T, features]. The convolution's channels are the fused q|k|v
// projection (2*Hk*dk + Hv*dv). A token's segment (packed sequences, or 0 for padding) bounds both the convolution
// window and the recurrent state: a new segment starts from a zero state and sees no earlier token.
//
// The rule, per batch row b and value head h (key head h / (Hv/Hk)), state S [dk, dv]:
//   q, k L2-normalised (x * rsqrt(sum x^2 + 1e-6)), q also times dk^-0.5; beta = sigmoid(b);
//   g = -exp(A_log[h]) * softplus(a + dt_bias[h]); alpha = exp(g)
//   S' = alpha S;  delta = beta (v - S'^T k);  S = S' + k delta^T;  o = S^T q
// computed token by token in two passes over S per token (decay + recall, then write + read). The state entering
// every chunk of kChunk tokens is kept for the backward pass, which recomputes a chunk's states from it and runs
// the recurrence in reverse. Work is split by (row, value head): every sum has one fixed order, so results do not
// depend on the thread count.
#pragma once
#include <omp.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#include "vecmath.h"

namespace lmf {

constexpr int64_t kDeltaChunk = 64;

inline float softplusf(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }
inline float sigmoidf(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// Where each token's segment starts within its row (the token itself when segments are absent and t == 0).
inline std::vector<int64_t> segmentStarts(const int32_t* seg, int64_t B, int64_t T) {
  std::vector<int64_t> start(B * T);
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++) {
      int64_t i = b * T + t;
      start[i] = (t == 0 || (seg && seg[i] != seg[i - 1])) ? t : start[i - 1];
    }
  return start;
}

// out = silu(sum_k w[c,k] x[t-K+1+k, c]) over channels c of x [B*T, C], w [C, K]. Inputs before the segment's
// start are zero, or (B = 1, no segments) the K-1 earlier inputs in `history` [(K-1), C], oldest first.
inline void causalConvSiluForward(const float* x, const float* w, float* out, int64_t B, int64_t T, int64_t C,
                                  int64_t K, const int32_t* seg, const float* history) {
  std::vector<int64_t> start = segmentStarts(seg, B, T);
  constexpr int64_t kBlock = 64;
#pragma omp parallel for schedule(static) collapse(2)
  for (int64_t b = 0; b < B; b++)
    for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
      int64_t c1 = c0 + kBlock < C ? c0 + kBlock : C;
      for (int64_t t = 0; t < T; t++) {
        float acc[kBlock] = {0};
        for (int64_t k = 0; k < K; k++) {
          int64_t s = t - (K - 1) + k;
          const float* src;
          if (s >= start[b * T + t]) src = x + (b * T + s) * C;
          else if (history && s < 0) src = history + (K - 1 + s) * C;
          else continue;
          for (int64_t c = c0; c < c1; c++) acc[c - c0] += w[c * K + k] * src[c];
        }
        float* o = out + (b * T + t) * C;
#pragma omp simd
        for (int64_t c = c0; c < c1; c++) o[c] = acc[c - c0] / (1.0f + exp_approx(-acc[c - c0]));
      }
    }
}

// dx (written) and dw (accumulated) of causalConvSiluForward without history.
inline void causalConvSiluBackward(const float* x, const float* w, const float* dout, float* dx, float* dw, int64_t B,
                                   int64_t T, int64_t C, int64_t K, const int32_t* seg) {
  std::vector<int64_t> start = segmentStarts(seg, B, T);
  constexpr int64_t kBlock = 64;
  std::memset(dx, 0, sizeof(float) * B * T * C);
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
    int64_t c1 = c0 + kBlock < C ? c0 + kBlock : C;
    for (int64_t b = 0; b < B; b++)
      for (int64_t t = 0; t < T; t++) {
        float pre[kBlock] = {0}, dpre[kBlock];
        int64_t first = start[b * T + t];
        for (int64_t k = 0; k < K; k++) {
          int64_t s = t - (K - 1) + k;
          if (s < first) continue;
          const float* src = x + (b * T + s) * C;
          for (int64_t c = c0; c < c1; c++) pre[c - c0] += w[c * K + k] * src[c];
        }
        const float* d = dout + (b * T + t) * C;
        for (int64_t c = c0; c < c1; c++) {
          float z = pre[c - c0], sg = 1.0f / (1.0f + exp_approx(-z));
          dpre[c - c0] = d[c] * sg * (1.0f + z * (1.0f - sg));
        }
        for (int64_t k = 0; k < K; k++) {
          int64_t s = t - (K - 1) + k;
          if (s < first) continue;
          const float* src = x + (b * T + s) * C;
          float* dsrc = dx + (b * T + s) * C;
          for (int64_t c = c0; c < c1; c++) {
            dsrc[c] += w[c * K + k] * dpre[c - c0];
            dw[c * K + k] += src[c] * dpre[c - c0];
          }
        }
      }
  }
}

// The shapes of one gated delta rule call.
struct DeltaShape {
  int64_t B, T, Hk, Hv, dk, dv;
  int64_t channels() const { return 2 * Hk * dk + Hv * dv; }
  int64_t chunks() const { return (T + kDeltaChunk - 1) / kDeltaChunk; }
  int64_t stateSize() const { return dk * dv; }
};

// One token's inputs for one value head, normalised and gated.
struct DeltaToken {
  const float* qraw;
  const float* kraw;
  const float* v;
  float rq, rk;  // 1/sqrt(sum x^2 + eps) of q and k
  float beta, alpha, g, u;
};

inline DeltaToken deltaToken(const DeltaShape& s, const float* qkv, const float* braw, const float* araw,
                             const float* Alog, const float* dtBias, int64_t row, int64_t h, float* qn, float* kn) {
  const int64_t C = s.channels(), kh = h / (s.Hv / s.Hk);
  DeltaToken d;
  d.qraw = qkv + row * C + kh * s.dk;
  d.kraw = qkv + row * C + s.Hk * s.dk + kh * s.dk;
  d.v = qkv + row * C + 2 * s.Hk * s.dk + h * s.dv;
  float sq = 0, sk = 0;
  for (int64_t i = 0; i < s.dk; i++) {
    sq += d.qraw[i] * d.qraw[i];
    sk += d.kraw[i] * d.kraw[i];
  }
  d.rq = 1.0f / std::sqrt(sq + 1e-6f);
  d.rk = 1.0f / std::sqrt(sk + 1e-6f);
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.dk));
  for (int64_t i = 0; i < s.dk; i++) {
    qn[i] = d.qraw[i] * d.rq * scale;
    kn[i] = d.kraw[i] * d.rk;
  }
  d.beta = sigmoidf(braw[row * s.Hv + h]);
  d.u = araw[row * s.Hv + h] + dtBias[h];
  d.g = -std::exp(Alog[h]) * softplusf(d.u);
  d.alpha = std::exp(d.g);
  return d;
}

// One step of the rule on S in place; writes recalled and delta [dv] (the backward keeps them), and o [dv] unless
// o is null (the backward's recomputation reads no output).
inline void deltaStep(float* S, const DeltaShape& s, const DeltaToken& d, const float* qn, const float* kn,
                      float* recalled, float* delta, float* o) {
  const int64_t dk = s.dk, dv = s.dv;
  std::memset(recalled, 0, sizeof(float) * dv);
  for (int64_t i = 0; i < dk; i++) {
    float* r = S + i * dv;
    const float ki = kn[i], a = d.alpha;
#pragma omp simd
    for (int64_t j = 0; j < dv; j++) {
      r[j] *= a;
      recalled[j] += ki * r[j];
    }
  }
  for (int64_t j = 0; j < dv; j++) delta[j] = d.beta * (d.v[j] - recalled[j]);
  if (!o) {
    for (int64_t i = 0; i < dk; i++) {
      float* r = S + i * dv;
      const float ki = kn[i];
#pragma omp simd
      for (int64_t j = 0; j < dv; j++) r[j] += ki * delta[j];
    }
    return;
  }
  std::memset(o, 0, sizeof(float) * dv);
  for (int64_t i = 0; i < dk; i++) {
    float* r = S + i * dv;
    const float ki = kn[i], qi = qn[i];
#pragma omp simd
    for (int64_t j = 0; j < dv; j++) {
      r[j] += ki * delta[j];
      o[j] += qi * r[j];
    }
  }
}

// out [B*T, Hv*dv]. checkpoints [B, Hv, chunks, dk, dv] (or null): the state entering each chunk. initState and
// finalState [B, Hv, dk, dv] (or null: zero / not kept).
inline void gatedDeltaForward(const DeltaShape& s, const float* qkv, const float* braw, const float* araw,
                              const float* Alog, const float* dtBias, const int32_t* seg, float* out, float* checkpoints,
                              const float* initState, float* finalState) {
  const int64_t SS = s.stateSize();
#pragma omp parallel
  {
    std::vector<float> S(SS), qn(s.dk), kn(s.dk), recalled(s.dv), delta(s.dv), o(s.dv);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < s.B * s.Hv; bh++) {
      const int64_t b = bh / s.Hv, h = bh % s.Hv;
      if (initState) std::memcpy(S.data(), initState + bh * SS, sizeof(float) * SS);
      else std::fill(S.begin(), S.end(), 0.0f);
      for (int64_t t = 0; t < s.T; t++) {
        const int64_t row = b * s.T + t;
        if (t > 0 && seg && seg[row] != seg[row - 1]) std::fill(S.begin(), S.end(), 0.0f);
        if (checkpoints && t % kDeltaChunk == 0)
          std::memcpy(checkpoints + (bh * s.chunks() + t / kDeltaChunk) * SS, S.data(), sizeof(float) * SS);
        DeltaToken d = deltaToken(s, qkv, braw, araw, Alog, dtBias, row, h, qn.data(), kn.data());
        deltaStep(S.data(), s, d, qn.data(), kn.data(), recalled.data(), delta.data(), o.data());
        std::memcpy(out + row * s.Hv * s.dv + h * s.dv, o.data(), sizeof(float) * s.dv);
      }
      if (finalState) std::memcpy(finalState + bh * SS, S.data(), sizeof(float) * SS);
    }
  }
}

// Gradients of gatedDeltaForward (zero initial state) from dout: dqkv [B*T, channels] and db, da [B*T, Hv] are
// written; dAlog, ddtBias [Hv] are accumulated.
inline void gatedDeltaBackward(const DeltaShape& s, const float* qkv, const float* braw, const float* araw,
                               const float* Alog, const float* dtBias, const int32_t* seg, const float* dout,
                               const float* checkpoints, float* dqkv, float* db, float* da, float* dAlog,
                               float* ddtBias) {
  const int64_t SS = s.stateSize(), dk = s.dk, dv = s.dv, C = s.channels(), N = s.B * s.T;
  const int64_t group = s.Hv / s.Hk;
  // per value head q and k gradients, summed over each key head's group afterwards in head order
  std::vector<float> dqk(N * s.Hv * 2 * dk);
  std::vector<double> dAlogPart(s.B * s.Hv), ddtPart(s.B * s.Hv);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dk));
#pragma omp parallel
  {
    // per token of the chunk: the state entering it, and its recalled values and delta
    std::vector<float> prev(kDeltaChunk * SS), recalls(kDeltaChunk * dv), deltas(kDeltaChunk * dv);
    std::vector<float> dS(SS), S(SS), qn(dk), kn(dk);
    std::vector<float> ddelta(dv), dkv(dv), dqn(dk), dkn(dk);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < s.B * s.Hv; bh++) {
      const int64_t b = bh / s.Hv, h = bh % s.Hv;
      double accAlog = 0, accDt = 0;
      std::fill(dS.begin(), dS.end(), 0.0f);
      for (int64_t c = s.chunks() - 1; c >= 0; c--) {
        const int64_t t0 = c * kDeltaChunk, t1 = t0 + kDeltaChunk < s.T ? t0 + kDeltaChunk : s.T;
        // the chunk's steps again from its checkpoint, as the forward pass took them
        std::memcpy(S.data(), checkpoints + (bh * s.chunks() + c) * SS, sizeof(float) * SS);
        for (int64_t t = t0; t < t1; t++) {
          const int64_t row = b * s.T + t;
          if (t > t0 && seg && seg[row] != seg[row - 1]) std::fill(S.begin(), S.end(), 0.0f);
          std::memcpy(prev.data() + (t - t0) * SS, S.data(), sizeof(float) * SS);
          DeltaToken d = deltaToken(s, qkv, braw, araw, Alog, dtBias, row, h, qn.data(), kn.data());
          deltaStep(S.data(), s, d, qn.data(), kn.data(), &recalls[(t - t0) * dv], &deltas[(t - t0) * dv], nullptr);
        }
        for (int64_t t = t1 - 1; t >= t0; t--) {
          const int64_t row = b * s.T + t;
          const float* P = prev.data() + (t - t0) * SS;  // S_{t-1}
          DeltaToken d = deltaToken(s, qkv, braw, araw, Alog, dtBias, row, h, qn.data(), kn.data());
          const float* dO = dout + row * s.Hv * dv + h * dv;
          const float* recalled = &recalls[(t - t0) * dv];  // (alpha P)^T k
          const float* delta = &deltas[(t - t0) * dv];      // beta (v - recalled)
          // pass A: S_t = alpha P + k delta^T; dq = S_t dO; dS += q dO^T; ddelta = dS^T k; dk = dS delta
          std::fill(ddelta.begin(), ddelta.end(), 0.0f);
          for (int64_t i = 0; i < dk; i++) {
            const float* p = P + i * dv;
            float* g = dS.data() + i * dv;
            const float ki = kn[i], qi = qn[i];
            float sq = 0, sk = 0;
#pragma omp simd reduction(+ : sq, sk)
            for (int64_t j = 0; j < dv; j++) {
              float st = d.alpha * p[j] + ki * delta[j];
              sq += st * dO[j];
              g[j] += qi * dO[j];
              ddelta[j] += ki * g[j];
              sk += g[j] * delta[j];
            }
            dqn[i] = sq;
            dkn[i] = sk;
          }
          float dbeta = 0;
          for (int64_t j = 0; j < dv; j++) {
            dbeta += ddelta[j] * (d.v[j] - recalled[j]);
            dkv[j] = -d.beta * ddelta[j];
          }
          float* dvOut = dqkv + row * C + 2 * s.Hk * dk + h * dv;
          for (int64_t j = 0; j < dv; j++) dvOut[j] = d.beta * ddelta[j];
          // pass B: dS' = dS + k dkv^T; dk += alpha P dkv; dalpha = <dS', P>; dS_{t-1} = alpha dS'
          float dalpha = 0;
          for (int64_t i = 0; i < dk; i++) {
            const float* p = P + i * dv;
            float* g = dS.data() + i * dv;
            const float ki = kn[i];
            float sk = 0, sa = 0;
#pragma omp simd reduction(+ : sk, sa)
            for (int64_t j = 0; j < dv; j++) {
              float gp = g[j] + ki * dkv[j];
              sk += p[j] * dkv[j];
              sa += gp * p[j];
              g[j] = d.alpha * gp;
            }
            dkn[i] += d.alpha * sk;
            dalpha += sa;
          }
          if (t > 0 && seg && seg[row] != seg[row - 1]) std::fill(dS.begin(), dS.end(), 0.0f);
          // the gates
          const float dg = dalpha * d.alpha;
          accAlog += static_cast<double>(dg) * d.g;
          const float du = dg * -std::exp(Alog[h]) * sigmoidf(d.u);
          da[row * s.Hv + h] = du;
          accDt += du;
          db[row * s.Hv + h] = dbeta * d.beta * (1.0f - d.beta);
          // the L2 normalisations: y = x r  =>  dx = r dy - r^3 (x . dy) x
          float* dq = dqk.data() + (row * s.Hv + h) * 2 * dk;
          float* dkk = dq + dk;
          float xq = 0, xk = 0;
          for (int64_t i = 0; i < dk; i++) {
            xq += d.qraw[i] * dqn[i];
            xk += d.kraw[i] * dkn[i];
          }
          const float cq = d.rq * d.rq * d.rq * xq * scale, ck = d.rk * d.rk * d.rk * xk;
          for (int64_t i = 0; i < dk; i++) {
            dq[i] = scale * d.rq * dqn[i] - cq * d.qraw[i];
            dkk[i] = d.rk * dkn[i] - ck * d.kraw[i];
          }
        }
      }
      dAlogPart[bh] = accAlog;
      ddtPart[bh] = accDt;
    }
  }
  // each key head's q and k gradients: the sum over its value heads, in head order
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < N; row++)
    for (int64_t kh = 0; kh < s.Hk; kh++) {
      float* dq = dqkv + row * C + kh * dk;
      float* dkk = dqkv + row * C + s.Hk * dk + kh * dk;
      for (int64_t i = 0; i < dk; i++) dq[i] = dkk[i] = 0.0f;
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

}  // namespace lmf
