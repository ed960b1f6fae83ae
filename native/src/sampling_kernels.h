// Choosing the next token from a row of logits with Hugging Face's processors in their order: repetition
// penalty, temperature, top-k, top-p, then a draw u in [0, 1) over what is kept. A few vectorised passes over the
// vocabulary and no full sort. Top-k: a counting pass over a few score levels finds how far below the best the
// k-th token lies, and only the tokens above that level are sorted and weighed (LLaMA-Factory's defaults take
// this path). Top-p alone, and distributions too flat for the levels: selection by score bins (only the tokens of
// the bin where the k-th token or the top-p boundary falls are sorted; top-p's passes run on the threads, and the
// draw walks only the part of the vocabulary it falls in). Plain pointers and sizes; sampling.cc binds it.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstddef>
#include <vector>
#include "kernel_support.h"
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

// The vocabulary's passes go in blocks of this many scores, each reduced in vector lanes: written out, the compiler
// leaves a plain max or any-of loop over floats scalar.
constexpr int64_t kScanBlock = 32;

// Calls visit(v) for each v in from..to whose x[v] meets `hit`, in order, until visit returns true. Few entries
// meet it: each whole block of kScanBlock is first tested in vector lanes and skipped when none does.
template <typename T, typename Hit, typename Visit>
inline void visitHits(const T* x, int64_t from, int64_t to, Hit hit, Visit visit) {
  for (int64_t v0 = from; v0 < to; v0 += kScanBlock) {
    const int64_t end = std::min(to, v0 + kScanBlock);
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

// The passes that decide top-p run in kChunks fixed parts of the vocabulary (each a whole number of blocks), shared
// out among the threads; what the parts find is combined in part order, so that no sum depends on the thread count.
constexpr int kChunks = 4;

inline int64_t chunkSize(int64_t V) { return ((V + kChunks - 1) / kChunks + kScanBlock - 1) / kScanBlock * kScanBlock; }

// body(c, from, to) for each part c of the vocabulary, on the threads (a short row on this one: see splitRange)
template <typename Body>
inline void forChunks(int64_t V, Body body) {
  const int64_t chunk = chunkSize(V);
  const auto part = [&](int c) {
    FlushDenormals ftz;  // exp of scores far below the best (see splitRange)
    body(c, std::min(V, c * chunk), std::min(V, (c + 1) * chunk));
  };
  if (V < (1 << 14)) {
    for (int c = 0; c < kChunks; c++) part(c);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int c = 0; c < kChunks; c++) part(c);
}

// The best and the lowest score (exact: neither depends on the order).
struct ScoreRange {
  float best, lowest;
};
inline ScoreRange scoreRange(const float* sc, int64_t V) {
  ScoreRange parts[kChunks];
  forChunks(V, [&](int c, int64_t from, int64_t to) {
    float hi[kScanBlock], lo[kScanBlock];
    std::fill(hi, hi + kScanBlock, -INFINITY);
    std::fill(lo, lo + kScanBlock, INFINITY);
    int64_t v = from;
    for (; v + kScanBlock <= to; v += kScanBlock)
#pragma omp simd
      for (int64_t j = 0; j < kScanBlock; j++) {
        hi[j] = sc[v + j] > hi[j] ? sc[v + j] : hi[j];
        lo[j] = sc[v + j] < lo[j] ? sc[v + j] : lo[j];
      }
    for (; v < to; v++) {
      hi[0] = std::max(hi[0], sc[v]);
      lo[0] = std::min(lo[0], sc[v]);
    }
    parts[c] = {*std::max_element(hi, hi + kScanBlock), *std::min_element(lo, lo + kScanBlock)};
  });
  ScoreRange r{-INFINITY, INFINITY};
  for (const ScoreRange& p : parts) r = {std::max(r.best, p.best), std::min(r.lowest, p.lowest)};
  return r;
}

// Greedy decoding's token: the first of the best scores (NaN scores are passed over; torch.argmax would pick a NaN).
inline int32_t argmaxScore(const float* sc, int64_t V) {
  const float best = scoreRange(sc, V).best;
  int32_t first = 0;  // stays 0 when every score is NaN
  visitHits(sc, 0, V, [best](float x) { return x >= best; }, [&first](int64_t v) {
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

inline bool hfOrder(const Candidate& a, const Candidate& b) { return before(a.score, a.id, b.score, b.id); }

// A token's weight before top-k and top-p: exp((score - best) / T), 0 for the negligible ones (below `floor`).
struct Weigher {
  float best, invT, floor;
  float operator()(float score) const { return score >= floor ? exp_approx((score - best) * invT) : 0.0f; }
};

// Bins over the scores of the tokens with weight, from the lowest score (or the floor, when some tokens lie below
// it) to the best (the highest bin); a token's bin is monotone in its score, so every token of a higher bin comes
// before every token of a lower one. Selection then sorts one bin's tokens only. The tokens without weight go to
// the bin kBins, past the others. A bin is recomputed from the score wherever it is needed (a few vector
// operations) rather than stored: writing and reading the vocabulary's bins cost more, the caches being cold after
// the weights' stream.
constexpr int kBins = 4096;
// kBins + 1 bins: the last holds the tokens without weight.
constexpr int64_t kSlots = kBins + 1;

struct ScoreBins {
  Weigher weigh;
  float lo, scale;
  ScoreBins(Weigher w, float lowest)
      : weigh(w), lo(lowest), scale(w.best > lowest ? (kBins - 1) / (w.best - lowest) : 0.0f) {}
  int32_t of(float score) const {
    float at = (score - lo) * scale;  // clamped with plain selects: std::min/max keep loops over it scalar
    at = at > 0.0f ? at : 0.0f;
    at = at < kBins - 1 ? at : kBins - 1;
    return score >= weigh.floor ? static_cast<int32_t>(at) : kBins;
  }
};

// Top-p's bin masses: each part of the vocabulary keeps its own partial sums, two per bin, so that neighbouring
// tokens of one bin do not wait on each other's additions.
constexpr int kParts = 2;

struct BinMasses {
  std::vector<float> partial;  // [kChunks][kParts][kSlots]: f32, as transformers sums its probabilities
  std::vector<double> mass;    // [kSlots]: every part's

  // the mass of part c's tokens in bins above `bin`
  double massAbove(int c, int bin) const {
    double sum = 0;
    for (int p = 0; p < kParts; p++)
      for (int64_t b = bin + 1; b < kBins; b++) sum += partial[(c * kParts + p) * kSlots + b];
    return sum;
  }
};

// The weights of tokens from..to into their bins' partial masses m, weights and bins computed in vector lanes a block
// at a time; the scatter into the bins is scalar.
inline void binRange(const float* sc, int64_t from, int64_t to, ScoreBins bins, float* m) {
  for (int64_t v0 = from; v0 < to; v0 += kScanBlock) {
    const int64_t n = std::min(kScanBlock, to - v0);
    float w[kScanBlock];
    int32_t bin[kScanBlock];
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
      w[j] = bins.weigh(sc[v0 + j]);
      bin[j] = bins.of(sc[v0 + j]);
    }
    for (int64_t j = 0; j < n; j++) m[(j % kParts) * kSlots + bin[j]] += w[j];
  }
}

// One pass over the vocabulary: each part's bin masses, and their sums.
inline void binMasses(const float* sc, int64_t V, ScoreBins bins, BinMasses& t) {
  t.partial.assign(kChunks * kParts * kSlots, 0.0f);
  float* partial = t.partial.data();
  forChunks(V, [&](int c, int64_t from, int64_t to) { binRange(sc, from, to, bins, partial + c * kParts * kSlots); });
  t.mass.assign(kSlots, 0.0);
  for (int i = 0; i < kChunks * kParts; i++)
    for (int64_t b = 0; b < kSlots; b++) t.mass[b] += partial[i * kSlots + b];
}

// The tokens of bins first..last (< kBins: all with weight), in Hugging Face's order: each part collects its own.
inline std::vector<Candidate>& tokensInBins(const float* sc, int64_t V, ScoreBins bins, int first, int last,
                                            std::vector<Candidate> (&parts)[kChunks], std::vector<Candidate>& out) {
  forChunks(V, [&](int c, int64_t from, int64_t to) {
    parts[c].clear();
    visitHits(sc, from, to, [bins, first, last](float x) {
      const int32_t bin = bins.of(x);
      return bin >= first && bin <= last;
    }, [&](int64_t v) {
      parts[c].push_back({static_cast<int32_t>(v), sc[v], bins.weigh(sc[v])});
      return false;
    });
  });
  out.clear();
  for (const std::vector<Candidate>& p : parts) out.insert(out.end(), p.begin(), p.end());
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
inline std::vector<Candidate>& topKAbove(const float* sc, int64_t V, float at, Weigher weigh, int64_t k,
                                         std::vector<Candidate>& out) {
  out.clear();
  visitHits(sc, 0, V, [at](float x) { return x >= at; }, [&](int64_t v) {
    out.push_back({static_cast<int32_t>(v), sc[v], weigh(sc[v])});
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

// Draws from the tokens kept by top-p (those up to `last` in Hugging Face's order), walking the vocabulary by id
// from `from` with r of the kept mass left to pass, as drawDense walks; each block's weights are recomputed in
// vector lanes.
inline int32_t drawThrough(const float* sc, int64_t V, Weigher weigh, const Candidate& last, int64_t from, double r) {
  const auto keptWeight = [&](float score, int64_t v) {
    const bool keep = score > last.score || (score == last.score && v <= last.id);
    return keep ? weigh(score) : 0.0f;
  };
  for (int64_t v0 = from; v0 < V; v0 += kScanBlock) {
    const int64_t n = std::min(kScanBlock, V - v0);
    float w[kScanBlock];
    float block = 0;  // in f32 lanes: a block's sum needs no more, and a double reduction cost a third of the pass
#pragma omp simd reduction(+ : block)
    for (int64_t j = 0; j < n; j++) {
      w[j] = keptWeight(sc[v0 + j], v0 + j);
      block += w[j];
    }
    if (r - block >= 0) {
      r -= block;
      continue;
    }
    for (int64_t j = 0; j < n; j++) {
      r -= w[j];
      if (r < 0 && w[j] > 0) return static_cast<int32_t>(v0 + j);
    }
  }
  // rounding left r >= 0 (the walk summed in another order than the kept mass): the last kept token by id
  for (int64_t v = V - 1; v >= 0; v--)
    if (keptWeight(sc[v], v) > 0) return static_cast<int32_t>(v);
  return last.id;
}

// Scratch kept between calls (grow-only) by the binding.
struct SamplingScratch {
  std::vector<float> scores, weights;
  std::vector<Candidate> candidates, chunkCandidates[kChunks];
  std::vector<int64_t> binCount;
  BinMasses binMasses;
};

// Top-k, or top-p alone, selected by the score bins: top-k when the distribution is too flat for the levels. Top-k
// sorts the bins holding the k best, then applies top-p among them; top-p keeps whole the bins above the one where
// the mass reaches top_p and sorts only that bin's tokens.
inline int32_t sampleByBins(const float* sc, int64_t V, Weigher weigh, float lowest, const SamplingSettings& s,
                            double u, SamplingScratch& m) {
  const ScoreBins bins(weigh, std::max(lowest, weigh.floor));
  int b = kBins - 1;
  if (s.topK > 0) {
    std::vector<int64_t>& count = m.binCount;
    count.assign(kSlots, 0);
    for (int64_t v = 0; v < V; v++) count[bins.of(sc[v])]++;
    int64_t above = 0;
    while (b > 0 && above + count[b] < s.topK) above += count[b--];
    std::vector<Candidate>& c = tokensInBins(sc, V, bins, b, kBins - 1, m.chunkCandidates, m.candidates);
    keepTies(c, static_cast<size_t>(s.topK));
    return drawKeptTopP(c, s.topP, u);
  }
  BinMasses& t = m.binMasses;
  binMasses(sc, V, bins, t);
  double total = 0;
  for (int i = 0; i < kBins; i++) total += t.mass[i];
  const double target = s.topP * total;
  double above = 0;
  while (b > 0 && above + t.mass[b] < target) above += t.mass[b--];
  const std::vector<Candidate>& boundary = tokensInBins(sc, V, bins, b, b, m.chunkCandidates, m.candidates);
  size_t last = 0;
  for (double kept = above + boundary[0].weight; kept < target && last + 1 < boundary.size();)
    kept += boundary[++last].weight;
  // each part's kept mass from its bins (and the boundary's kept tokens): the walk starts in the part u falls in
  const int64_t chunk = chunkSize(V);
  double partKept[kChunks];
  for (int c = 0; c < kChunks; c++) partKept[c] = t.massAbove(c, b);
  for (size_t i = 0; i <= last; i++) partKept[boundary[i].id / chunk] += boundary[i].weight;
  double r = 0;
  for (double kept : partKept) r += kept;
  r *= u;
  int c = 0;
  while (c + 1 < kChunks && r - partKept[c] >= 0) r -= partKept[c++];
  return drawThrough(sc, V, weigh, boundary[last], c * chunk, r);
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
  const ScoreRange range = scoreRange(sc, V);
  const float best = range.best;
  // no finite best (every score -inf or NaN, or a +inf): no distribution to draw from; the first best score, as
  // greedy decoding would take
  if (!std::isfinite(best)) return argmaxScore(sc, V);
  const Weigher weigh{best, 1.0f / s.temperature, best - kNegligible * s.temperature};
  if (s.topK > 0) {
    // the k best lie above the highest level holding k tokens (or are all the tokens with weight): only those are
    // sorted, and only their weights computed
    const float at = levelOfTopK(sc, V, best, s.temperature, weigh.floor, s.topK);
    if (!std::isnan(at)) return drawKeptTopP(topKAbove(sc, V, at, weigh, s.topK, m.candidates), s.topP, u);
  }
  if (s.topK > 0 || s.topP < 1.0f) return sampleByBins(sc, V, weigh, range.lowest, s, u, m);
  // no limit: every token's weight, and their sum
  m.weights.resize(V);
  float* w = m.weights.data();
  double total = 0;
#pragma omp simd reduction(+ : total)
  for (int64_t v = 0; v < V; v++) {
    w[v] = weigh(sc[v]);
    total += w[v];
  }
  return drawDense(w, V, total, u);
}

}  // namespace
}  // namespace lmf
