// Choosing the next token from a row of logits with Hugging Face's processors in their order: repetition
// penalty, temperature, top-k, top-p, then a draw u in [0, 1) over what is kept. One pass over the vocabulary
// and partial selection instead of a sort: a 152k vocabulary costs well under a millisecond. Plain pointers and
// sizes; sampling.cc binds it.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
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
  std::vector<float> scores, weights, values;
  std::vector<int32_t> ids;
  std::vector<Candidate> candidates;
};

// Draws u's share of the non-zero weights, walking the vocabulary by id.
inline int32_t drawDense(const float* weights, int64_t V, double u) {
  double total = 0;
  int64_t last = 0;
  for (int64_t v = 0; v < V; v++)
    if (weights[v] > 0) {
      total += weights[v];
      last = v;
    }
  double r = u * total;
  for (int64_t v = 0; v <= last; v++) {
    if (weights[v] <= 0) continue;
    r -= weights[v];
    if (r < 0) return static_cast<int32_t>(v);
  }
  return static_cast<int32_t>(last);
}

inline int32_t sampleToken(const float* logits, int64_t V, const int32_t* seen, int64_t nSeen, const SamplingSettings& s,
                           double u, SamplingScratch& m) {
  std::vector<float>& scores = m.scores;
  scores.assign(logits, logits + V);
  if (s.penalty != 1.0f)
    for (int64_t i = 0; i < nSeen; i++) {
      float& x = scores[seen[i]];
      x = x < 0 ? x * s.penalty : x / s.penalty;
    }
  float best = -INFINITY;
  for (int64_t v = 0; v < V; v++) best = std::max(best, scores[v]);
  const float floor = best - kNegligible * s.temperature, invT = 1.0f / s.temperature;
  // every token's weight exp((score - best) / T) in one vectorised pass; 0 for the negligible ones
  m.weights.resize(V);
  float* w = m.weights.data();
  const float* sc = scores.data();
#pragma omp simd
  for (int64_t v = 0; v < V; v++) w[v] = sc[v] >= floor ? exp_approx((sc[v] - best) * invT) : 0.0f;
  if (s.topK == 0 && s.topP >= 1.0f) return drawDense(w, V, u);

  std::vector<int32_t>& ids = m.ids;
  ids.clear();
  for (int64_t v = 0; v < V; v++)
    if (w[v] > 0) ids.push_back(static_cast<int32_t>(v));
  if (s.topK > 0 && static_cast<int64_t>(ids.size()) > s.topK) {
    // the k-th best score, then everything above it and, of the tokens at it, the lowest ids (Hugging Face's order)
    std::vector<float>& values = m.values;
    values.resize(ids.size());
    for (size_t i = 0; i < ids.size(); i++) values[i] = sc[ids[i]];
    std::nth_element(values.begin(), values.begin() + (s.topK - 1), values.end(), std::greater<float>());
    const float kth = values[s.topK - 1];
    int64_t above = 0;
    for (int32_t v : ids) above += sc[v] > kth;
    int64_t atKth = s.topK - above;
    size_t out = 0;
    for (int32_t v : ids) {
      if (sc[v] > kth || (sc[v] == kth && atKth-- > 0)) ids[out++] = v;
      else w[v] = 0.0f;
    }
    ids.resize(out);
  }
  if (s.topP >= 1.0f) return drawDense(w, V, u);

  // top-p: the smallest prefix (score, then id) whose mass reaches top_p, by weighted selection: partition around
  // a pivot and keep the side that holds the boundary; only the last small range is sorted
  std::vector<Candidate>& c = m.candidates;
  c.resize(ids.size());
  double total = 0;
  for (size_t i = 0; i < ids.size(); i++) {
    c[i] = {ids[i], sc[ids[i]], w[ids[i]]};
    total += w[ids[i]];
  }
  auto before = [](const Candidate& a, const Candidate& b) { return a.score > b.score || (a.score == b.score && a.id < b.id); };
  const double target = s.topP * total;
  size_t lo = 0, hi = c.size();
  double above = 0;  // the mass of c[0, lo), all of it inside the prefix
  while (hi - lo > 32) {
    const Candidate pivot = c[lo + (hi - lo) / 2];
    auto mid = std::partition(c.begin() + lo, c.begin() + hi, [&](const Candidate& x) { return before(x, pivot); });
    size_t split = static_cast<size_t>(mid - c.begin());
    double mass = 0;
    for (size_t i = lo; i < split; i++) mass += c[i].weight;
    if (above + mass >= target) {
      hi = split;  // the boundary lies among those before the pivot
      continue;
    }
    // everything before the pivot is in; the pivot comes next
    above += mass;
    auto at = std::find_if(c.begin() + split, c.begin() + hi, [&](const Candidate& x) { return x.id == pivot.id; });
    std::iter_swap(c.begin() + split, at);
    above += c[split].weight;
    lo = split + 1;
    if (above >= target) {
      hi = lo;
      break;
    }
  }
  std::sort(c.begin() + lo, c.begin() + hi, before);
  size_t kept = lo;
  double mass = above;
  while (kept < hi && (mass < target || kept == 0)) mass += c[kept++].weight;
  // only the kept tokens keep their weight
  for (size_t i = kept; i < c.size(); i++) w[c[i].id] = 0.0f;
  return drawDense(w, V, u);
}

}  // namespace
}  // namespace lmf
