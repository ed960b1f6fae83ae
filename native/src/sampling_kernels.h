// Choosing the next token from a row of logits with Hugging Face's processors in their order: repetition
// penalty, temperature, top-k, top-p, then a draw u in [0, 1) over what is kept. A few vectorised passes over the
// vocabulary and no full sort. Top-k: a counting pass over a few score levels finds how far below the best the
// k-th token lies, and only the tokens above that level are sorted and weighed (LLaMA-Factory's defaults take
// this path). Top-p alone, and distributions too flat for the levels: selection by score bins (only the tokens of
// the bin where the k-th token or the top-p boundary falls are sorted). Plain pointers and sizes; sampling.cc
// binds it.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstddef>
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

// The vocabulary's passes go in blocks of this many scores, each reduced in vector lanes: written out, the compiler
// leaves a plain max or any-of loop over floats scalar.
constexpr int64_t kScanBlock = 32;

// Calls visit(v) for each v in 0..V whose x[v] meets `hit`, in order, until visit returns true. Few entries meet
// it: each whole block of kScanBlock is first tested in vector lanes and skipped when none does.
template <typename T, typename Hit, typename Visit>
inline void visitHits(const T* x, int64_t V, Hit hit, Visit visit) {
  for (int64_t v0 = 0; v0 < V; v0 += kScanBlock) {
    const int64_t end = std::min(V, v0 + kScanBlock);
    if (end - v0 == kScanBlock) {
      int hits = 0;
#pragma omp simd reduction(+ : hits)
      for (int64_t j = 0; j < kScanBlock; j++) hits += hit(x[v0 + j]) ? 1 : 0;
      if (!hits) continue;
    }
    for (int64_t v = v0; v < end; v++)
      if (hit(x[v]) && visit(v)) return;
  }
}

// The best score (exact: a max does not depend on the order).
inline float maxScore(const float* sc, int64_t V) {
  float lanes[kScanBlock];
  std::fill(lanes, lanes + kScanBlock, -INFINITY);
  int64_t v = 0;
  for (; v + kScanBlock <= V; v += kScanBlock)
#pragma omp simd
    for (int64_t j = 0; j < kScanBlock; j++) lanes[j] = sc[v + j] > lanes[j] ? sc[v + j] : lanes[j];
  float best = -INFINITY;
  for (int64_t j = 0; j < kScanBlock; j++) best = std::max(best, lanes[j]);
  for (; v < V; v++) best = std::max(best, sc[v]);
  return best;
}

// Greedy decoding's token: the first of the best scores (NaN scores are passed over; torch.argmax would pick a NaN).
inline int32_t argmaxScore(const float* sc, int64_t V) {
  const float best = maxScore(sc, V);
  int32_t first = 0;  // stays 0 when every score is NaN
  visitHits(sc, V, [best](float x) { return x >= best; }, [&first](int64_t v) {
    first = static_cast<int32_t>(v);
    return true;
  });
  return first;
}

// Draws u's share of the non-zero weights (summing to total), walking the vocabulary by id.
inline int32_t drawDense(const float* weights, int64_t V, double total, double u) {
  double r = u * total;
  for (int64_t v0 = 0; v0 < V; v0 += kScanBlock) {
    const int64_t end = std::min(V, v0 + kScanBlock);
    // a block whose weights do not use up r is passed in one step (its sum taken in vector lanes)
    double block = 0;
#pragma omp simd reduction(+ : block)
    for (int64_t v = v0; v < end; v++) block += weights[v];
    if (r - block >= 0 && end < V) {
      r -= block;
      continue;
    }
    for (int64_t v = v0; v < end; v++) {
      r -= weights[v];
      if (r < 0 && weights[v] > 0) return static_cast<int32_t>(v);
    }
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
  const float top = static_cast<float>(kBins - 1);
#pragma omp simd
  for (int64_t v = 0; v < V; v++) {
    float at = (sc[v] - lo) * scale;  // clamped with plain selects: std::min/max keep the loop scalar
    at = at > 0.0f ? at : 0.0f;
    at = at < top ? at : top;
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
  visitHits(binOf, V, [first, last](int32_t bin) { return bin >= first && bin <= last; }, [&](int64_t v) {
    out.push_back({static_cast<int32_t>(v), sc[v], w[v]});
    return false;
  });
  std::sort(out.begin(), out.end(), hfOrder);
  return out;
}

// Score levels for top-k: one vectorised pass counts the tokens at or above each, and only the tokens above the
// highest level that holds k of them are sorted. The first levels lie below the best score by multiples of the
// temperature, the last at the floor of tokens with any weight; where a level holds too many tokens and the one
// above too few, the gap between them is split into new levels and counted again.
constexpr int kLevels = 8;
constexpr float kLevelGaps[kLevels] = {0.5f, 1.0f, 2.0f, 3.0f, 5.0f, 8.0f, 14.0f, kNegligible};
// At most this many tokens are sorted; past it after kRefinements splits (a flat distribution), the score bins
// select instead.
constexpr int64_t kMaxCandidates = 4096;
constexpr int kRefinements = 4;

struct Levels {
  float at[kLevels];  // descending
  int32_t count[kLevels];
};

// Counts the tokens at or above each level.
inline void countLevels(const float* sc, int64_t V, Levels& l) {
  int32_t count[kLevels] = {0};
  const float* at = l.at;
#pragma omp simd reduction(+ : count[:kLevels])
  for (int64_t v = 0; v < V; v++)
    for (int j = 0; j < kLevels; j++) count[j] += sc[v] >= at[j] ? 1 : 0;
  std::copy(count, count + kLevels, l.count);
}

// The highest level with at least k tokens (or the floor) holding at most kMaxCandidates; NaN when none is found.
inline float levelOfTopK(const float* sc, int64_t V, float best, float temperature, float floor, int64_t k) {
  Levels l;
  for (int j = 0; j < kLevels - 1; j++) l.at[j] = best - kLevelGaps[j] * temperature;
  l.at[kLevels - 1] = floor;
  countLevels(sc, V, l);
  for (int round = 0;; round++) {
    int j = 0;
    while (j < kLevels - 1 && l.count[j] < k) j++;
    if (l.count[j] <= kMaxCandidates) return l.at[j];
    // fewer than k above the floor: no split can help
    if (round == kRefinements || l.count[j] < k) return NAN;
    // split the gap below the level above (or the best score) into new levels ending at this one
    const float hi = j > 0 ? l.at[j - 1] : best, lo = l.at[j];
    for (int i = 0; i < kLevels; i++) l.at[i] = hi - (hi - lo) * static_cast<float>(i + 1) / kLevels;
    l.at[kLevels - 1] = lo;
    countLevels(sc, V, l);
  }
}

// Top-k keeps every token whose score ties the k-th's, as transformers' TopKLogitsWarper does (it removes only the
// scores below the k-th): c, in Hugging Face's order, is cut after the k-th token's last tie.
inline void keepTies(std::vector<Candidate>& c, size_t k) {
  if (c.size() <= k) return;
  const float kth = c[k - 1].score;
  size_t end = k;
  while (end < c.size() && c[end].score == kth) end++;
  c.resize(end);
}

// The tokens at or above `at` in Hugging Face's order, with their weights, cut to the top k (and its ties).
inline std::vector<Candidate>& topKAbove(const float* sc, int64_t V, float at, float best, float invT, int64_t k,
                                         std::vector<Candidate>& out) {
  out.clear();
  visitHits(sc, V, [at](float x) { return x >= at; }, [&](int64_t v) {
    out.push_back({static_cast<int32_t>(v), sc[v], exp_approx((sc[v] - best) * invT)});
    return false;
  });
  const size_t limit = std::min(static_cast<size_t>(k), out.size());
  std::partial_sort(out.begin(), out.begin() + limit, out.end(), hfOrder);
  // the ties of the k-th score sit unsorted after it: bring them forward in id order, drop the rest
  const float kth = out[limit - 1].score;
  const auto ties = std::partition(out.begin() + limit, out.end(), [&](const Candidate& x) { return x.score == kth; });
  std::sort(out.begin() + limit, ties, hfOrder);
  out.erase(ties, out.end());
  return out;
}

// Cuts candidates in Hugging Face's order to the shortest prefix whose mass reaches `target` (at least one).
inline void prefixReaching(std::vector<Candidate>& c, double target) {
  double mass = 0;
  size_t kept = 0;
  while (kept < c.size() && (mass < target || kept == 0)) mass += c[kept++].weight;
  c.resize(kept);
}

// The draw over kept candidates, walking them by id as drawDense walks the vocabulary.
inline int32_t drawKept(std::vector<Candidate>& c, double u) {
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

// top-p over candidates in Hugging Face's order, relative to their own mass (top-k's rule), then the draw
inline int32_t drawKeptTopP(std::vector<Candidate>& c, float topP, double u) {
  if (topP < 1.0f) {
    double total = 0;
    for (const Candidate& x : c) total += x.weight;
    prefixReaching(c, topP * total);
  }
  return drawKept(c, u);
}

// top-k (then top-p over the k), selected by the score bins: for distributions too flat for the levels
inline int32_t topKByBins(const float* sc, const float* w, int64_t V, float floor, float best, const SamplingSettings& s,
                          double u, SamplingScratch& m) {
  m.binOf.resize(V);
  int32_t* binOf = m.binOf.data();
  binScores(sc, w, V, floor, best, binOf);
  std::vector<int64_t>& binCount = m.binCount;
  binCount.assign(kBins + 1, 0);
  for (int64_t v = 0; v < V; v++) binCount[binOf[v] + 1]++;
  int64_t above = 0;
  int b = kBins - 1;
  while (b > 0 && above + binCount[b + 1] < s.topK) above += binCount[1 + b--];
  std::vector<Candidate>& c = tokensInBins(sc, w, binOf, V, b, kBins - 1, m.candidates);
  keepTies(c, static_cast<size_t>(s.topK));
  return drawKeptTopP(c, s.topP, u);
}

// top-p selected by the score bins: the bins above the one where the mass reaches `target` are wholly kept, and
// only that bin's tokens are sorted
inline int32_t topPByBins(const float* sc, float* w, int64_t V, float floor, float best, double target, double u,
                          SamplingScratch& m) {
  m.binOf.resize(V);
  int32_t* binOf = m.binOf.data();
  binScores(sc, w, V, floor, best, binOf);
  // four partial histograms, so that neighbouring tokens in one bin do not wait on each other's sums
  constexpr int kParts = 4;
  std::vector<double>& binMass = m.binMass;
  binMass.assign(kParts * kBins, 0.0);
  int64_t v = 0;
  for (; v + kParts <= V; v += kParts)
    for (int p = 0; p < kParts; p++)
      if (binOf[v + p] >= 0) binMass[p * kBins + binOf[v + p]] += w[v + p];
  for (; v < V; v++)
    if (binOf[v] >= 0) binMass[binOf[v]] += w[v];
  for (int b = 0; b < kBins; b++)
    for (int p = 1; p < kParts; p++) binMass[b] += binMass[p * kBins + b];
  double above = 0;
  int b = kBins - 1;
  while (b > 0 && above + binMass[b] < target) above += binMass[b--];
  const std::vector<Candidate>& boundary = tokensInBins(sc, w, binOf, V, b, b, m.candidates);
  size_t last = 0;
  for (double mass = above + boundary[0].weight; mass < target && last + 1 < boundary.size();)
    mass += boundary[++last].weight;
  keepThrough(sc, w, V, boundary[last].score, boundary[last].id);
  double kept = 0;
#pragma omp simd reduction(+ : kept)
  for (int64_t v = 0; v < V; v++) kept += w[v];
  return drawDense(w, V, kept, u);
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
  const float best = maxScore(sc, V);
  const float invT = 1.0f / s.temperature, floor = best - kNegligible * s.temperature;
  if (s.topK > 0) {
    // the k best lie above the highest level holding k tokens (or are all the tokens with weight): only those are
    // sorted, and only their weights computed
    const float at = levelOfTopK(sc, V, best, s.temperature, floor, s.topK);
    if (!std::isnan(at)) return drawKeptTopP(topKAbove(sc, V, at, best, invT, s.topK, m.candidates), s.topP, u);
  }
  // every token's weight exp((score - best) / T), 0 for the negligible ones, and their sum
  m.weights.resize(V);
  float* w = m.weights.data();
  double total = 0;
#pragma omp simd reduction(+ : total)
  for (int64_t v = 0; v < V; v++) {
    w[v] = sc[v] >= floor ? exp_approx((sc[v] - best) * invT) : 0.0f;
    total += w[v];
  }
  if (s.topK > 0) return topKByBins(sc, w, V, floor, best, s, u, m);
  if (s.topP >= 1.0f) return drawDense(w, V, total, u);
  return topPByBins(sc, w, V, floor, best, s.topP * total, u, m);
}

}  // namespace
}  // namespace lmf
