#include "tools/embed/eval.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <sstream>

#include "engine/common.h"
#include "engine/data/verification_bin.h"
#include "engine/norm.h"

namespace coco {

namespace {

// A uniform draw from [0, n) (n > 0). mt19937_64 is the same on every platform; the
// modulo bias is below 2^-40 for the dataset sizes here.
int64_t draw(std::mt19937_64& rng, int64_t n) { return static_cast<int64_t>(rng() % static_cast<uint64_t>(n)); }

}  // namespace

namespace {
// A verification .bin's pairs: rows 2i and 2i+1, same as its issame_list says.
std::vector<Pair> pairs_of_bin(const std::string& path, int64_t rows) {
  const VerificationBin set = read_verification_bin(path);
  if (2 * set.pairs() != rows)
    COCO_THROW(path, ": holds ", set.pairs(), " pairs of ", 2 * set.pairs(), " images, but there are ", rows,
               " embeddings (export the same file: --data bin:", path, ")");
  std::vector<Pair> pairs;
  for (int64_t i = 0; i < set.pairs(); ++i) pairs.push_back({2 * i, 2 * i + 1, set.issame[static_cast<size_t>(i)]});
  return pairs;
}
}  // namespace

std::vector<Pair> read_pairs(const std::string& path, const std::vector<int64_t>& labels) {
  if (path.rfind("bin:", 0) == 0) return pairs_of_bin(path.substr(4), static_cast<int64_t>(labels.size()));
  std::ifstream f(path);
  if (!f) COCO_THROW(path, ": cannot open the pairs file");
  std::vector<Pair> pairs;
  std::string line;
  const auto n = static_cast<int64_t>(labels.size());
  for (int lineno = 1; std::getline(f, line); ++lineno) {
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream in(line);
    std::vector<std::string> tok;
    for (std::string t; in >> t;) tok.push_back(t);
    if (tok.empty()) continue;
    if (tok.size() != 2 && tok.size() != 3)
      COCO_THROW(path, ":", lineno, ": expected 'A B' or 'A B SAME', got ", tok.size(), " fields");
    auto index = [&](const std::string& t) {
      size_t used = 0;
      long long v = -1;
      try {
        v = std::stoll(t, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != t.size() || v < 0 || v >= n)
        COCO_THROW(path, ":", lineno, ": '", t, "' is not a row index in [0, ", n, ")");
      return static_cast<int64_t>(v);
    };
    Pair p{index(tok[0]), index(tok[1]), false};
    if (tok.size() == 3) {
      if (tok[2] != "0" && tok[2] != "1") COCO_THROW(path, ":", lineno, ": SAME must be 0 or 1, got '", tok[2], "'");
      p.same = tok[2] == "1";
    } else {
      p.same = labels[p.a] == labels[p.b];
    }
    pairs.push_back(p);
  }
  if (pairs.empty()) COCO_THROW(path, ": no pairs");
  return pairs;
}

void write_pairs(const std::string& path, const std::vector<Pair>& pairs) {
  std::ofstream f(path, std::ios::trunc);
  if (!f) COCO_THROW(path, ": cannot write the pairs file");
  f << "# A B SAME (row indices into embeddings.npy; SAME 1 or 0)\n";
  for (const auto& p : pairs) f << p.a << ' ' << p.b << ' ' << (p.same ? 1 : 0) << '\n';
  if (!f) COCO_THROW(path, ": write failed");
}

std::vector<Pair> sample_pairs(const std::vector<int64_t>& labels, int64_t count, uint64_t seed) {
  std::map<int64_t, std::vector<int64_t>> by_class;
  for (size_t i = 0; i < labels.size(); ++i) by_class[labels[i]].push_back(static_cast<int64_t>(i));
  bool can_pos = false;
  for (const auto& [c, rows] : by_class) can_pos |= rows.size() >= 2;
  if (!can_pos) COCO_THROW("cannot sample positive pairs: no class has two samples");
  if (by_class.size() < 2) COCO_THROW("cannot sample negative pairs: only one class");
  std::mt19937_64 rng(seed);
  const auto n = static_cast<int64_t>(labels.size());
  std::vector<Pair> pairs;
  pairs.reserve(static_cast<size_t>(count));
  for (int64_t k = 0; k < count; ++k) {
    Pair p;
    if (k % 2 == 0) {  // positive: a random sample, then another of its class
      const std::vector<int64_t>* rows = nullptr;
      do {
        p.a = draw(rng, n);
        rows = &by_class[labels[p.a]];
      } while (rows->size() < 2);
      do p.b = (*rows)[draw(rng, static_cast<int64_t>(rows->size()))];
      while (p.b == p.a);
      p.same = true;
    } else {  // negative: two random samples of different classes
      p.a = draw(rng, n);
      do p.b = draw(rng, n);
      while (labels[p.b] == labels[p.a]);
      p.same = false;
    }
    pairs.push_back(p);
  }
  return pairs;
}

std::vector<double> pair_scores(const std::vector<float>& emb, int64_t dim, const std::vector<Pair>& pairs,
                                Metric metric) {
  const int64_t n = dim > 0 ? static_cast<int64_t>(emb.size()) / dim : 0;
  std::vector<double> s(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto& p = pairs[i];
    if (p.a < 0 || p.a >= n || p.b < 0 || p.b >= n)
      COCO_THROW("pair ", i, " (", p.a, ", ", p.b, ") is outside the ", n, " embeddings");
    const float* x = emb.data() + p.a * dim;
    const float* y = emb.data() + p.b * dim;
    double xy = 0, xx = 0, yy = 0, d2 = 0;
    for (int64_t k = 0; k < dim; ++k) {
      xy += double(x[k]) * y[k];
      xx += double(x[k]) * x[k];
      yy += double(y[k]) * y[k];
      d2 += (double(x[k]) - y[k]) * (double(x[k]) - y[k]);
    }
    s[i] = metric == Metric::kCosine ? xy / std::sqrt((xx + kNormEpsilon) * (yy + kNormEpsilon)) : -std::sqrt(d2);
  }
  return s;
}

double best_threshold(const std::vector<double>& scores, const std::vector<Pair>& pairs,
                      const std::vector<int64_t>& index) {
  if (index.empty()) COCO_THROW("best_threshold: no pairs to choose a threshold on");
  std::vector<std::pair<double, bool>> v;
  v.reserve(index.size());
  for (int64_t i : index) v.emplace_back(scores[i], pairs[i].same);
  std::sort(v.begin(), v.end());
  const auto m = static_cast<int64_t>(v.size());
  // Threshold below v[i] (and above v[i-1]) accepts v[i..m): correct = negatives below + positives from i.
  int64_t pos_total = 0;
  for (const auto& e : v) pos_total += e.second;
  int64_t neg_below = 0, pos_below = 0;
  double best_t = v.front().first - 1;
  int64_t best_correct = pos_total;  // accept all
  for (int64_t i = 1; i <= m; ++i) {
    neg_below += !v[i - 1].second;
    pos_below += v[i - 1].second;
    if (i < m && v[i].first == v[i - 1].first) continue;  // not a boundary between distinct scores
    const int64_t correct = neg_below + (pos_total - pos_below);
    if (correct > best_correct) {
      best_correct = correct;
      best_t = i < m ? 0.5 * (v[i - 1].first + v[i].first) : v.back().first + 1;
    }
  }
  return best_t;
}

Verification verify(const std::vector<double>& scores, const std::vector<Pair>& pairs, int folds) {
  if (scores.size() != pairs.size()) COCO_THROW("verify: ", scores.size(), " scores for ", pairs.size(), " pairs");
  const auto P = static_cast<int64_t>(pairs.size());
  if (folds < 2 || P < folds) COCO_THROW("verification needs at least 2 folds and a pair per fold (", P, " pairs, ",
                                         folds, " folds)");
  for (int64_t i = 0; i < P; ++i)  // a NaN never equals itself: the ROC walk below would not advance
    if (!std::isfinite(scores[i]))
      COCO_THROW("verification: the score of pair ", i, " (rows ", pairs[i].a, " and ", pairs[i].b, ") is ", scores[i],
                 "; scores must be finite");
  Verification r;
  for (const auto& p : pairs) (p.same ? r.positives : r.negatives) += 1;
  if (r.positives == 0 || r.negatives == 0)
    COCO_THROW("verification needs positive and negative pairs (have ", r.positives, " and ", r.negatives, ")");

  for (int f = 0; f < folds; ++f) {
    const int64_t lo = f * P / folds, hi = (f + 1) * P / folds;
    std::vector<int64_t> train;
    for (int64_t i = 0; i < P; ++i)
      if (i < lo || i >= hi) train.push_back(i);
    const double t = best_threshold(scores, pairs, train);
    int64_t correct = 0;
    for (int64_t i = lo; i < hi; ++i) correct += (scores[i] > t) == pairs[i].same;
    r.fold_threshold.push_back(t);
    r.fold_accuracy.push_back(static_cast<double>(correct) / static_cast<double>(hi - lo));
  }
  r.accuracy_mean = std::accumulate(r.fold_accuracy.begin(), r.fold_accuracy.end(), 0.0) / folds;
  double ss = 0;
  for (double a : r.fold_accuracy) ss += (a - r.accuracy_mean) * (a - r.accuracy_mean);
  r.accuracy_std = std::sqrt(ss / (folds - 1));

  // ROC: accept score > t for t at each distinct score, descending, then t = -inf.
  std::vector<int64_t> order(P);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  const double np = static_cast<double>(r.positives), nn = static_cast<double>(r.negatives);
  int64_t tp = 0, fp = 0;
  for (int64_t k = 0; k < P;) {
    const double t = scores[order[k]];
    r.roc.push_back({t, fp / nn, tp / np});  // accepted so far: scores > t
    for (; k < P && scores[order[k]] == t; ++k) (pairs[order[k]].same ? tp : fp) += 1;
  }
  r.roc.push_back({-std::numeric_limits<double>::infinity(), 1.0, 1.0});
  for (size_t i = 1; i < r.roc.size(); ++i)
    r.auc += (r.roc[i].far - r.roc[i - 1].far) * 0.5 * (r.roc[i].tar + r.roc[i - 1].tar);

  // TAR at FAR: negatives' scores descending; allow k = floor(f * negatives) of them.
  std::vector<double> neg, pos;
  for (int64_t i = 0; i < P; ++i) (pairs[i].same ? pos : neg).push_back(scores[i]);
  std::sort(neg.begin(), neg.end(), std::greater<double>());
  for (double f : {1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6}) {
    TarAtFar q;
    q.far_target = f;
    const auto k = static_cast<int64_t>(std::floor(f * nn * (1 + 1e-12)));
    if (k >= 1) {
      q.reachable = true;
      q.threshold = k >= r.negatives ? -std::numeric_limits<double>::infinity() : neg[k];
      int64_t acc_pos = 0, acc_neg = 0;
      for (double s : pos) acc_pos += s > q.threshold;
      for (double s : neg) acc_neg += s > q.threshold;
      q.tar = acc_pos / np;
      q.far = acc_neg / nn;
    }
    r.tar_at_far.push_back(q);
  }
  return r;
}

Identification identify(const std::vector<float>& emb, int64_t dim, const std::vector<int64_t>& labels,
                        int64_t gallery_per_class, Metric metric) {
  if (gallery_per_class < 1) COCO_THROW("identification needs at least one gallery sample per class");
  const auto n = static_cast<int64_t>(labels.size());
  if (static_cast<int64_t>(emb.size()) != n * dim) COCO_THROW("identify: embeddings and labels disagree in count");
  std::map<int64_t, int64_t> seen;
  std::vector<int64_t> gallery, probes;
  for (int64_t i = 0; i < n; ++i) (seen[labels[i]]++ < gallery_per_class ? gallery : probes).push_back(i);
  Identification r;
  r.gallery = static_cast<int64_t>(gallery.size());
  r.probes = static_cast<int64_t>(probes.size());
  std::map<int64_t, int64_t> class_index;
  for (int64_t g : gallery) class_index.emplace(labels[g], static_cast<int64_t>(class_index.size()));
  r.classes = static_cast<int64_t>(class_index.size());
  if (r.probes == 0) COCO_THROW("identification: no probes (every class has at most ", gallery_per_class,
                                " samples); lower --gallery-per-class");
  if (r.classes < 2) COCO_THROW("identification needs at least two classes in the gallery");

  std::vector<int64_t> ranks(r.classes + 1, 0);
  std::vector<double> best(r.classes);
  std::vector<Pair> row(gallery.size());
  for (int64_t p : probes) {
    for (size_t g = 0; g < gallery.size(); ++g) row[g] = {p, gallery[g], false};
    const std::vector<double> s = pair_scores(emb, dim, row, metric);
    std::fill(best.begin(), best.end(), -std::numeric_limits<double>::infinity());
    for (size_t g = 0; g < gallery.size(); ++g) {
      const int64_t c = class_index[labels[gallery[g]]];
      best[c] = std::max(best[c], s[g]);
    }
    const int64_t own = class_index.at(labels[p]);
    int64_t rank = 1;
    for (int64_t c = 0; c < r.classes; ++c) rank += c != own && best[c] >= best[own];
    ranks[rank] += 1;
  }
  int64_t cum = 0;
  for (int64_t k = 1; k <= r.classes; ++k) {
    cum += ranks[k];
    r.cmc.push_back(static_cast<double>(cum) / static_cast<double>(r.probes));
  }
  r.top1 = r.cmc[0];
  r.top5 = r.cmc[std::min<int64_t>(5, r.classes) - 1];
  return r;
}

double classification_accuracy(const std::vector<float>& emb, int64_t dim, const std::vector<int64_t>& labels) {
  const auto n = static_cast<int64_t>(labels.size());
  if (dim <= 0 || static_cast<int64_t>(emb.size()) != n * dim || n == 0)
    COCO_THROW("classification: embeddings and labels disagree in count");
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* z = emb.data() + i * dim;
    const int64_t arg = std::max_element(z, z + dim) - z;  // the first maximum
    if (labels[i] >= dim) COCO_THROW("classification: label ", labels[i], " of row ", i, " has no column (", dim, ")");
    correct += arg == labels[i];
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

}  // namespace coco
