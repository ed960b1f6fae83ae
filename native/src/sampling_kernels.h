// Choosing the next token from a row of logits with Hugging Face's processors in their order: repetition
// penalty, temperature, top-k, top-p, then a draw u in [0, 1) over what is kept. A few vectorised passes over the
// vocabulary, and selection by score bins instead of a sort (only the tokens of the bin where the k-th token or
// the top-p boundary falls are sorted): a 152k vocabulary costs well under a millisecond. Plain pointers and
// sizes; sampling.cc binds it.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>
#include "vecmath.h"

namespace lmf {
namespace {

struct SamplingSettings {
  float penalty;      // repetition penalty (1: none), applied to the `seen` ids
  float temperature;  // > 0
  int64_t topK;       // 0: no limit
  float topP;         // 1: no limit
};

// Tokens further than this below the best (in temperature-scaled logits) hold under e^-30 of the mass each.
constexpr float kNegligible = 30.0f;

struct Candidate {
  int32_t id;
  float score;
  double weight;
};

// Scratch kept between calls (grow-only) by the binding.
struct SamplingScratch {
  std::vector<float> scores, weights;
  std::vector<Candidate> candidates;
  std::vector<double> binMass;
  std::vector<int64_t> binCount;
  std::vector<int32_t> binOf;
};

// Draws u's share of the non-zero weights, walking the vocabulary by id.
inline int32_t drawDense(const float* weights, int64_t V, double u) {
  double total = 0;
#pragma omp simd reduction(+ : total)
  for (int64_t v = 0; v < V; v++) total += weights[v];
  double r = u * total;
  for (int64_t v = 0; v < V; v++) {
    r -= weights[v];
    if (r < 0 && weights[v] > 0) return static_cast<int32_t>(v);
  }
  int64_t last = V - 1;  // rounding left r >= 0: the last kept token
  while (last > 0 && weights[last] <= 0) last--;
  return static_cast<int32_t>(last);
}

// Hugging Face's order of tokens: higher score first, then lower id.
inline bool before(float scoreA, int32_t idA, float scoreB, int32_t idB) {
  return scoreA > scoreB || (scoreA == scoreB && idA < idB);
}

// Bins over the kept tokens' scores, highest bin = best score; a token's bin is monotone in its score, so every
// token of a higher bin comes before every token of a lower one. Selection then touches one bin's tokens only.
constexpr int kBins = 4096;

// Each token's bin in one vectorised pass, -1 for the tokens without weight.
inline void binScores(const float* sc, const float* w, int64_t V, float lo, float best, int32_t* binOf) {
  const float scale = best > lo ? (kBins - 1) / (best - lo) : 0.0f;
#pragma omp simd
  for (int64_t v = 0; v < V; v++) {
    const float at = std::min(static_cast<float>(kBins - 1), std::max(0.0f, (sc[v] - lo) * scale));
    binOf[v] = w[v] > 0 ? static_cast<int32_t>(at) : -1;
  }
}

inline bool hfOrder(const Candidate& a, const Candidate& b) { return before(a.score, a.id, b.score, b.id); }

// Keeps the tokens up to (score, id) inclusive in Hugging Face's order, zeroing the others' weights.
inline void keepThrough(const float* sc, float* w, int64_t V, float score, int32_t id) {
#pragma omp simd
  for (int64_t v = 0; v < V; v++)
    if (!(sc[v] > score || (sc[v] == score && v <= id))) w[v] = 0.0f;
}

// The tokens of bins first..last (all with weight: their bin is not -1), in Hugging Face's order.
inline std::vector<Candidate>& tokensInBins(const float* sc, const float* w, const int32_t* binOf, int64_t V, int first,
                                            int last, std::vector<Candidate>& out) {
  out.clear();
  for (int64_t v = 0; v < V; v++)
    if (binOf[v] >= first && binOf[v] <= last) out.push_back({static_cast<int32_t>(v), sc[v], w[v]});
  std::sort(out.begin(), out.end(), hfOrder);
  return out;
}

inline int32_t sampleToken(const float* logits, int64_t V, const int32_t* seen, int64_t nSeen, const SamplingSettings& s,
                           double u, SamplingScratch& m) {
  const float* sc = logits;
  if (s.penalty != 1.0f) {
    m.scores.assign(logits, logits + V);
    for (int64_t i = 0; i < nSeen; i++) {
      float& x = m.scores[seen[i]];
      x = x < 0 ? x * s.penalty : x / s.penalty;
    }
    sc = m.scores.data();
  }
  float best = -INFINITY;
#pragma omp simd reduction(max : best)
  for (int64_t v = 0; v < V; v++) best = std::max(best, sc[v]);
  const float floor = best - kNegligible * s.temperature, invT = 1.0f / s.temperature;
  // every token's weight exp((score - best) / T) in one vectorised pass; 0 for the negligible ones
  m.weights.resize(V);
  float* w = m.weights.data();
#pragma omp simd
  for (int64_t v = 0; v < V; v++) w[v] = sc[v] >= floor ? exp_approx((sc[v] - best) * invT) : 0.0f;
  if (s.topK == 0 && s.topP >= 1.0f) return drawDense(w, V, u);

  m.binOf.resize(V);
  int32_t* binOf = m.binOf.data();
  binScores(sc, w, V, floor, best, binOf);
  if (s.topK > 0) {
    // the k best: whole bins from the top, then the best of the bin where the k-th falls; from here on only those
    // few tokens are looked at
    std::vector<int64_t>& binCount = m.binCount;
    binCount.assign(kBins + 1, 0);
    for (int64_t v = 0; v < V; v++) binCount[binOf[v] + 1]++;
    int64_t above = 0;
    int b = kBins - 1;
    while (b > 0 && above + binCount[b + 1] < s.topK) above += binCount[1 + b--];
    std::vector<Candidate>& c = tokensInBins(sc, w, binOf, V, b, kBins - 1, m.candidates);
    if (static_cast<int64_t>(c.size()) > s.topK) c.resize(s.topK);
    if (s.topP < 1.0f) {
      double total = 0;
      for (const Candidate& x : c) total += x.weight;
      const double target = s.topP * total;
      size_t kept = 0;
      for (double mass = 0; kept < c.size() && (mass < target || kept == 0);) mass += c[kept++].weight;
      c.resize(kept);
    }
    // the draw walks the kept tokens by id, as drawDense walks the vocabulary
    std::sort(c.begin(), c.end(), [](const Candidate& x, const Candidate& y) { return x.id < y.id; });
    double total = 0;
    for (const Candidate& x : c) total += x.weight;
    double r = u * total;
    for (const Candidate& x : c) {
      r -= x.weight;
      if (r < 0) return x.id;
    }
    return c.back().id;
  }
  // top-p: the smallest prefix in that order whose mass reaches top_p of the kept mass, found the same way
  std::vector<double>& binMass = m.binMass;
  binMass.assign(kBins, 0.0);
  double total = 0;
  for (int64_t v = 0; v < V; v++)
    if (binOf[v] >= 0) {
      binMass[binOf[v]] += w[v];
      total += w[v];
    }
  const double target = s.topP * total;
  double above = 0;
  int b = kBins - 1;
  while (b > 0 && above + binMass[b] < target) above += binMass[b--];
  // bins above b are wholly kept: the boundary is among bin b's tokens, which come after them in the order
  const std::vector<Candidate>& boundary = tokensInBins(sc, w, binOf, V, b, b, m.candidates);
  size_t last = 0;
  for (double mass = above + boundary[0].weight; mass < target && last + 1 < boundary.size();)
    mass += boundary[++last].weight;
  keepThrough(sc, w, V, boundary[last].score, boundary[last].id);
  return drawDense(w, V, u);
}

}  // namespace
}  // namespace lmf
