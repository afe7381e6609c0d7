// coco-eval's metrics against values worked out by hand (derivations in comments)
// on small fixed sets, following the conventions in tools/embed/eval.h.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <fstream>

#include "engine/common.h"
#include "test_files.h"
#include "tools/embed/eval.h"

namespace coco {
namespace {

std::vector<Pair> flags(const std::vector<bool>& same) {
  std::vector<Pair> p;
  for (size_t i = 0; i < same.size(); ++i) p.push_back({0, 0, same[i]});
  return p;
}

TEST(Eval, PairScores) {
  const std::vector<float> e = {1, 0, 1, 1, 0, 0, 3, 4};  // rows (1,0) (1,1) (0,0) (3,4)
  const std::vector<Pair> p = {{0, 1, false}, {2, 3, false}, {0, 3, false}};
  const auto cos = pair_scores(e, 2, p, Metric::kCosine);
  EXPECT_NEAR(cos[0], 1 / std::sqrt(2.0), 1e-9);
  EXPECT_NEAR(cos[1], 0.0, 1e-9);  // a zero vector has cosine 0 (the epsilon), not NaN
  EXPECT_NEAR(cos[2], 0.6, 1e-9);
  const auto euc = pair_scores(e, 2, p, Metric::kEuclidean);
  EXPECT_NEAR(euc[1], -5.0, 1e-9);
  EXPECT_NEAR(euc[2], -std::sqrt(4.0 + 16.0), 1e-9);
  EXPECT_THROW(pair_scores(e, 2, {{0, 4, true}}, Metric::kCosine), Error);
}

TEST(Eval, BestThresholdByHand) {
  // Sorted: .2F .3F .6T .7F .8T .9T (3 positives). Correct pairs per candidate:
  //   .1 (accept all) 3 | .25: 4 | .45: 5 | .65: 4 | .75: 5 (tie, the smaller wins) | .85: 4 | 1.9: 3.
  const std::vector<double> s = {0.9, 0.8, 0.7, 0.6, 0.3, 0.2};
  const auto p = flags({true, true, false, true, false, false});
  EXPECT_NEAR(best_threshold(s, p, {0, 1, 2, 3, 4, 5}), 0.45, 1e-12);
  // Only the two highest pairs (both positive): accepting all is already perfect.
  EXPECT_NEAR(best_threshold(s, p, {0, 1}), 0.8 - 1, 1e-12);
  // Only negatives: reject all, max + 1.
  EXPECT_NEAR(best_threshold(s, p, {2, 4}), 0.7 + 1, 1e-12);
}

TEST(Eval, TwoFoldVerificationRocAndAucByHand) {
  // fold 0 = pairs 0-3, fold 1 = pairs 4-7.
  const std::vector<double> s = {0.9, 0.1, 0.6, 0.5, /**/ 0.8, 0.4, 0.3, 0.2};
  const auto p = flags({true, false, true, false, /**/ true, false, true, false});
  const Verification v = verify(s, p, 2);
  // Fold 0's threshold from fold 1 (.2F .3T .4F .8T): .25 and .6 both give 3/4; .25 wins.
  // On fold 0, .5F > .25 is the one mistake: 3/4.
  // Fold 1's threshold from fold 0 (.1F .5F .6T .9T): .55 gives 4/4. On fold 1, .3T is missed: 3/4.
  ASSERT_EQ(v.fold_threshold.size(), 2u);
  EXPECT_NEAR(v.fold_threshold[0], 0.25, 1e-12);
  EXPECT_NEAR(v.fold_threshold[1], 0.55, 1e-12);
  EXPECT_DOUBLE_EQ(v.fold_accuracy[0], 0.75);
  EXPECT_DOUBLE_EQ(v.fold_accuracy[1], 0.75);
  EXPECT_DOUBLE_EQ(v.accuracy_mean, 0.75);
  EXPECT_DOUBLE_EQ(v.accuracy_std, 0.0);
  EXPECT_EQ(v.positives, 4);
  EXPECT_EQ(v.negatives, 4);
  // Descending: .9T .8T .6T .5F .4F .3T .2F .1F; accept score > t.
  const std::vector<std::array<double, 3>> roc = {{0.9, 0, 0},     {0.8, 0, .25},   {0.6, 0, .5},
                                                  {0.5, 0, .75},   {0.4, .25, .75}, {0.3, .5, .75},
                                                  {0.2, .5, 1},    {0.1, .75, 1},   {-INFINITY, 1, 1}};
  ASSERT_EQ(v.roc.size(), roc.size());
  for (size_t i = 0; i < roc.size(); ++i) {
    EXPECT_EQ(v.roc[i].threshold, roc[i][0]) << i;
    EXPECT_DOUBLE_EQ(v.roc[i].far, roc[i][1]) << i;
    EXPECT_DOUBLE_EQ(v.roc[i].tar, roc[i][2]) << i;
  }
  // AUC = P(positive score > negative score) = (4 + 4 + 4 + 2) / 16.
  EXPECT_DOUBLE_EQ(v.auc, 14.0 / 16.0);
  // 4 negatives: even FAR 1e-1 would allow floor(0.4) = 0 false accepts: unreachable.
  ASSERT_EQ(v.tar_at_far.size(), 6u);
  for (const auto& q : v.tar_at_far) EXPECT_FALSE(q.reachable) << q.far_target;
}

TEST(Eval, FoldAccuraciesDifferAndStdUsesFMinusOne) {
  // Three folds of two pairs. Thresholds: fold 0 from {.7T .2F .6T .65F}: sorted .2F .6T .65F .7T,
  // candidates .1:2 .4:3 .625:2 .675:3 1.7:2 -> .4; on fold 0 (.9T .1F) 2/2.
  // Fold 1 from {.9T .1F .6T .65F}: .1F .6T .65F .9T -> .35 (3 of 4 right); on fold 1 (.7T .2F) 2/2.
  // Fold 2 from {.9T .1F .7T .2F}: .1F .2F .7T .9T -> .45 (4 of 4); on fold 2 (.6T .65F):
  // .6 > .45 accepted (right), .65 > .45 accepted (wrong): 1/2.
  const std::vector<double> s = {0.9, 0.1, 0.7, 0.2, 0.6, 0.65};
  const auto p = flags({true, false, true, false, true, false});
  const Verification v = verify(s, p, 3);
  EXPECT_NEAR(v.fold_threshold[0], 0.4, 1e-12);
  EXPECT_NEAR(v.fold_threshold[1], 0.35, 1e-12);
  EXPECT_NEAR(v.fold_threshold[2], 0.45, 1e-12);
  EXPECT_DOUBLE_EQ(v.fold_accuracy[0], 1.0);
  EXPECT_DOUBLE_EQ(v.fold_accuracy[1], 1.0);
  EXPECT_DOUBLE_EQ(v.fold_accuracy[2], 0.5);
  EXPECT_NEAR(v.accuracy_mean, 2.5 / 3, 1e-12);
  // deviations 1/6, 1/6, -1/3: sum of squares 1/6, over F-1 = 2: 1/12.
  EXPECT_NEAR(v.accuracy_std, std::sqrt(1.0 / 12), 1e-12);
}

TEST(Eval, TarAtFarByHand) {
  // Negatives 0.0, 0.1, ..., 0.9 (10); positives .95 .85 .5 .05.
  std::vector<double> s;
  std::vector<bool> same;
  for (int i = 0; i < 10; ++i) {
    s.push_back(0.1 * i);
    same.push_back(false);
  }
  for (double x : {0.95, 0.85, 0.5, 0.05}) {
    s.push_back(x);
    same.push_back(true);
  }
  const Verification v = verify(s, flags(same), 2);
  // FAR 0.1: one negative may pass; the threshold is the 2nd highest negative (0.8):
  // accepted positives .95 and .85 -> TAR 0.5; accepted negatives: 0.9 -> FAR 0.1.
  const TarAtFar& q = v.tar_at_far[0];
  EXPECT_DOUBLE_EQ(q.far_target, 0.1);
  ASSERT_TRUE(q.reachable);
  EXPECT_NEAR(q.threshold, 0.8, 1e-12);
  EXPECT_DOUBLE_EQ(q.tar, 0.5);
  EXPECT_DOUBLE_EQ(q.far, 0.1);
  for (size_t i = 1; i < 6; ++i) EXPECT_FALSE(v.tar_at_far[i].reachable);  // 1e-2 needs 100 negatives
}

// A NaN score (a NaN embedding) is an error naming the pair, not an endless ROC walk.
TEST(Eval, NonFiniteScoresAreRefusedByPair) {
  std::vector<double> s{0.9, 0.1, NAN, 0.2};
  try {
    verify(s, flags({true, false, true, false}), 2);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pair 2"), std::string::npos) << e.what();
  }
}

TEST(Eval, IdentificationByHand) {
  // Gallery (first of each class): 0:(1,0) 1:(0,1) 2:(-1,0). Probes:
  //   (0.9,0.1) class 0: own class best -> rank 1
  //   (1,0.2)   class 1: class 0 scores higher -> rank 2
  //   (0,-1)    class 2: cos 0 with class 0 ties its own 0 -> rank 2 (ties count against)
  //   (0.1,1)   class 2: classes 1 and 0 higher -> rank 3
  const std::vector<float> e = {1, 0, 0, 1, -1, 0, 0.9f, 0.1f, 1, 0.2f, 0, -1, 0.1f, 1};
  const std::vector<int64_t> labels = {0, 1, 2, 0, 1, 2, 2};
  const Identification r = identify(e, 2, labels, 1, Metric::kCosine);
  EXPECT_EQ(r.gallery, 3);
  EXPECT_EQ(r.probes, 4);
  EXPECT_EQ(r.classes, 3);
  ASSERT_EQ(r.cmc.size(), 3u);
  EXPECT_DOUBLE_EQ(r.cmc[0], 0.25);
  EXPECT_DOUBLE_EQ(r.cmc[1], 0.75);
  EXPECT_DOUBLE_EQ(r.cmc[2], 1.0);
  EXPECT_DOUBLE_EQ(r.top1, 0.25);
  EXPECT_DOUBLE_EQ(r.top5, 1.0);  // only 3 classes: top-5 = CMC(3)
  // Three gallery samples per class: every sample is in the gallery, no probes left.
  EXPECT_THROW(identify(e, 2, labels, 3, Metric::kCosine), Error);
  // Two per class: classes 0 and 1 have two samples each, class 2 three: one probe.
  const Identification r2 = identify(e, 2, labels, 2, Metric::kCosine);
  EXPECT_EQ(r2.probes, 1);
}

TEST(Eval, ClassificationByHand) {
  // argmax 1 (right), first maximum 0 of a tie (wrong, label 1), 2 (right).
  EXPECT_NEAR(classification_accuracy({1, 2, 0, 3, 3, 0, 0, 0, 1}, 3, {1, 1, 2}), 2.0 / 3, 1e-12);
}

TEST(Eval, SampledPairsAreBalancedAndReproducible) {
  std::vector<int64_t> labels;
  for (int i = 0; i < 50; ++i) labels.push_back(i % 5);
  const auto a = sample_pairs(labels, 101, 7);
  const auto b = sample_pairs(labels, 101, 7);
  const auto c = sample_pairs(labels, 101, 8);
  ASSERT_EQ(a.size(), 101u);
  bool differs = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].a, b[i].a);
    EXPECT_EQ(a[i].b, b[i].b);
    differs |= a[i].a != c[i].a || a[i].b != c[i].b;
    EXPECT_EQ(a[i].same, i % 2 == 0);
    EXPECT_EQ(a[i].same, labels[a[i].a] == labels[a[i].b]);
    EXPECT_NE(a[i].a, a[i].b);
  }
  EXPECT_TRUE(differs);
  EXPECT_THROW(sample_pairs({0, 1, 2}, 4, 1), Error);  // no class with two samples
  EXPECT_THROW(sample_pairs({3, 3, 3}, 4, 1), Error);  // one class: no negatives
}

TEST(Eval, PairsFileReadWriteAndErrors) {
  testing::TempDir d;
  const std::vector<int64_t> labels = {0, 0, 1, 1};
  std::ofstream(d / "p.txt") << "# comment\n0 1\n\n2 0 0  # explicit\n3 2 1\n";
  const auto p = read_pairs(d / "p.txt", labels);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_TRUE(p[0].same);  // from the labels
  EXPECT_FALSE(p[1].same);
  EXPECT_EQ(p[2].a, 3);
  write_pairs(d / "q.txt", p);
  const auto q = read_pairs(d / "q.txt", labels);
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(q[1].b, 0);
  EXPECT_FALSE(q[1].same);
  std::ofstream(d / "bad.txt") << "0 1\n0 9\n";
  try {
    read_pairs(d / "bad.txt", labels);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.txt:2: '9' is not a row index"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace coco
