// Metrics on exported embeddings: the library behind coco-eval.
//
// Conventions (every function here follows them, and the tests check them by hand):
//  * a pair is called "same" when its score is strictly greater than the threshold;
//  * score = cosine similarity (default) or minus the Euclidean distance;
//  * verification, LFW protocol: the pairs, in file order, are cut into F contiguous
//    folds ([f*P/F, (f+1)*P/F)); for each fold the threshold that maximises accuracy
//    on the other F-1 folds is applied to it. Candidate thresholds are the midpoints
//    between consecutive distinct training scores, plus one below the lowest and one
//    above the highest (min-1, max+1); ties go to the smallest threshold;
//  * ROC over all pairs; TAR at FAR f uses the largest threshold set that accepts at
//    most floor(f * negatives) negative pairs. A FAR below 1/negatives cannot be
//    estimated and is reported as unreachable, not as a number;
//  * identification: the first G samples of each class (dataset order) form the
//    gallery, every other sample is a probe; a class scores the maximum over its
//    gallery samples; a probe's rank is 1 + the number of other classes scoring at
//    least as high as its own (ties count against it). CMC(k) = share of probes with
//    rank <= k.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace coco {

enum class Metric { kCosine, kEuclidean };

struct Pair {
  int64_t a = 0, b = 0;
  bool same = false;
};

// Pairs file: one pair a line, "A B" or "A B SAME" (row indices into the embeddings;
// SAME is 1 or 0, else taken from the labels); '#' starts a comment. Errors name file:line.
// "bin:FILE" takes the pairs of an insightface verification set instead: rows 2i and
// 2i+1, issame from the file (the embeddings must be that file's, in order).
std::vector<Pair> read_pairs(const std::string& path, const std::vector<int64_t>& labels);
void write_pairs(const std::string& path, const std::vector<Pair>& pairs);

// `count` pairs drawn from (labels, seed): positives and negatives alternate
// (positive first), so contiguous folds are balanced. Pairs may repeat.
std::vector<Pair> sample_pairs(const std::vector<int64_t>& labels, int64_t count, uint64_t seed);

// emb: (n, dim) row-major.
std::vector<double> pair_scores(const std::vector<float>& emb, int64_t dim, const std::vector<Pair>& pairs,
                                Metric metric);

// The threshold with the best accuracy on pairs `index` (see the conventions above).
double best_threshold(const std::vector<double>& scores, const std::vector<Pair>& pairs,
                      const std::vector<int64_t>& index);

struct RocPoint {
  double threshold;  // pairs with score > threshold are accepted; -inf for the last point
  double far, tar;
};

struct TarAtFar {
  double far_target = 0;
  bool reachable = false;
  double tar = 0, far = 0, threshold = 0;  // when reachable
};

struct Verification {
  int64_t positives = 0, negatives = 0;
  std::vector<double> fold_accuracy, fold_threshold;
  double accuracy_mean = 0, accuracy_std = 0;  // std with F-1 in the denominator
  std::vector<RocPoint> roc;                   // descending threshold, from (0,0) to (1,1)
  double auc = 0;
  std::vector<TarAtFar> tar_at_far;            // FAR 1e-1 ... 1e-6
};

Verification verify(const std::vector<double>& scores, const std::vector<Pair>& pairs, int folds);

struct Identification {
  int64_t gallery = 0, probes = 0, classes = 0;
  std::vector<double> cmc;  // cmc[k-1] = CMC(k), k = 1 .. classes in the gallery
  double top1 = 0, top5 = 0;
};

Identification identify(const std::vector<float>& emb, int64_t dim, const std::vector<int64_t>& labels,
                        int64_t gallery_per_class, Metric metric);

// Rows as logits: share whose first maximum is at the label's column.
double classification_accuracy(const std::vector<float>& emb, int64_t dim, const std::vector<int64_t>& labels);

}  // namespace coco
