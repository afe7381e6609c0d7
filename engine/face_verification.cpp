#include "engine/face_verification.h"

#include <cmath>

#include "engine/common.h"

namespace coco {
namespace {

constexpr int kThresholds = 400;  // np.arange(0, 4, 0.01)

double threshold(int i) { return i * 0.01; }

struct Range {
  int64_t begin, end;
};

// Share of the pairs in `ranges` that `t` classifies right (same when d < t).

double accuracy_at(double t, const std::vector<double>& d, const std::vector<bool>& same,
                   const std::vector<Range>& ranges) {
  int64_t right = 0, total = 0;
  for (const Range& r : ranges)
    for (int64_t i = r.begin; i < r.end; ++i) {
      right += (d[i] < t) == same[i];
      ++total;
    }
  return static_cast<double>(right) / static_cast<double>(total);
}

}  // namespace

std::vector<double> normalized_squared_distances(const std::vector<float>& emb, int64_t dim,
                                                 const std::vector<std::pair<int64_t, int64_t>>& pairs) {
  const int64_t n = dim > 0 ? static_cast<int64_t>(emb.size()) / dim : 0;
  auto inv_norm = [&](int64_t r) {
    double s = 0;
    for (int64_t k = 0; k < dim; ++k) s += static_cast<double>(emb[r * dim + k]) * emb[r * dim + k];
    return s > 0 ? 1 / std::sqrt(s) : 1.0;
  };
  std::vector<double> d;
  d.reserve(pairs.size());
  for (const auto& [a, b] : pairs) {
    if (a < 0 || b < 0 || a >= n || b >= n) COCO_THROW("pair (", a, ", ", b, ") is outside the ", n, " embeddings");
    const double ia = inv_norm(a), ib = inv_norm(b);
    double s = 0;
    for (int64_t k = 0; k < dim; ++k) {
      const double x = emb[a * dim + k] * ia - emb[b * dim + k] * ib;
      s += x * x;
    }
    d.push_back(s);
  }
  return d;
}

FoldedAccuracy insightface_accuracy(const std::vector<double>& distances, const std::vector<bool>& issame, int folds) {
  const auto n = static_cast<int64_t>(distances.size());
  if (static_cast<int64_t>(issame.size()) != n) COCO_THROW("insightface_accuracy: ", n, " distances for ", issame.size(), " pairs");
  if (folds < 2 || n < folds) COCO_THROW("the protocol's ", folds, " folds need at least ", folds, " pairs, have ", n);
  FoldedAccuracy out;
  int64_t begin = 0;
  for (int f = 0; f < folds; ++f) {
    const int64_t end = begin + n / folds + (f < n % folds ? 1 : 0);
    const std::vector<Range> train{{0, begin}, {end, n}}, test{{begin, end}};
    int best = 0;
    double best_acc = -1;
    for (int t = 0; t < kThresholds; ++t) {  // the first best, as np.argmax
      const double acc = accuracy_at(threshold(t), distances, issame, train);
      if (acc > best_acc) best_acc = acc, best = t;
    }
    out.fold_threshold.push_back(threshold(best));
    out.fold_accuracy.push_back(accuracy_at(threshold(best), distances, issame, test));
    begin = end;
  }
  for (double a : out.fold_accuracy) out.mean += a / folds;
  for (double a : out.fold_accuracy) out.std += (a - out.mean) * (a - out.mean) / folds;
  out.std = std::sqrt(out.std);
  return out;
}

std::vector<std::pair<int64_t, int64_t>> consecutive_pairs(int64_t pairs) {
  std::vector<std::pair<int64_t, int64_t>> p;
  for (int64_t i = 0; i < pairs; ++i) p.emplace_back(2 * i, 2 * i + 1);
  return p;
}

}  // namespace coco
