#include "layers/accuracy_layer.h"

#include "engine/common.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

// Scores from a table: rows are samples, columns classes.
static void set_scores(Blob& b, const std::vector<std::vector<float>>& rows) {
  b.reshape({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
  for (size_t n = 0; n < rows.size(); ++n)
    for (size_t c = 0; c < rows[0].size(); ++c) b.mutable_data()[n * rows[0].size() + c] = rows[n][c];
}
static void set_labels(Blob& b, const std::vector<float>& v) {
  b.reshape({static_cast<int64_t>(v.size())});
  for (size_t i = 0; i < v.size(); ++i) b.mutable_data()[i] = v[i];
}

TEST(AccuracyLayer, TopOneAndTopTwoWithTies) {
  Blob s, l, acc;
  set_scores(s, {{0.1f, 0.7f, 0.2f},    // label 1: top-1 correct
                 {0.5f, 0.5f, 0.0f},    // label 0, tied with 1: nothing strictly greater -> correct
                 {0.6f, 0.3f, 0.1f},    // label 2: two greater -> wrong even for top-2
                 {0.2f, 0.5f, 0.3f},    // label 2: one greater -> top-2 only
                 {0.4f, 0.4f, 0.4f}});  // label 2: all tied -> correct
  set_labels(l, {1, 0, 2, 2, 2});
  LayerHarness h;
  AccuracyLayer top1(layer_param(R"(name: "acc" type: "Accuracy")"));
  h.setup(top1, {&s, &l}, {&acc});
  EXPECT_EQ(acc.count(), 1);
  top1.forward({&s, &l}, {&acc});
  EXPECT_FLOAT_EQ(acc.cdata()[0], 3.0f / 5);
  AccuracyLayer top2(layer_param(R"(name: "acc" type: "Accuracy" accuracy_param { top_k: 2 })"));
  h.setup(top2, {&s, &l}, {&acc});
  top2.forward({&s, &l}, {&acc});
  EXPECT_FLOAT_EQ(acc.cdata()[0], 4.0f / 5);
}

TEST(AccuracyLayer, IgnoreLabelAndPerClass) {
  Blob s, l, acc, per_class;
  set_scores(s, {{0.9f, 0.1f}, {0.2f, 0.8f}, {0.7f, 0.3f}, {0.6f, 0.4f}});
  set_labels(l, {0, 0, -1, 1});
  AccuracyLayer layer(layer_param(R"(name: "acc" type: "Accuracy" accuracy_param { ignore_label: -1 })"));
  LayerHarness h;
  h.setup(layer, {&s, &l}, {&acc, &per_class});
  ASSERT_EQ(per_class.shape(), Shape({2}));
  layer.forward({&s, &l}, {&acc, &per_class});
  EXPECT_FLOAT_EQ(acc.cdata()[0], 1.0f / 3);
  EXPECT_FLOAT_EQ(per_class.cdata()[0], 0.5f);
  EXPECT_FLOAT_EQ(per_class.cdata()[1], 0.0f);
  set_labels(l, {-1, -1, -1, -1});  // nothing counted
  layer.forward({&s, &l}, {&acc, &per_class});
  EXPECT_EQ(acc.cdata()[0], 0.0f);
}

// Scores (N, C, H) with axis 1: one label per (n, h), compared with a plain argmax.
TEST(AccuracyLayer, SpatialLabelsAlongAxis) {
  const int64_t N = 3, C = 5, H = 4;
  Blob s({N, C, H}), l({N, H}), acc;
  fill_uniform(s, 0, 1, 9);
  int64_t expect_correct = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < H; ++j) {
      int64_t best = 0;
      for (int64_t c = 1; c < C; ++c)
        if (s.cdata()[(n * C + c) * H + j] > s.cdata()[(n * C + best) * H + j]) best = c;
      const int64_t label = n == 0 && j == 0 ? best : (n + j) % C;  // at least one correct
      l.mutable_data()[n * H + j] = static_cast<float>(label);
      expect_correct += best == label;
    }
  AccuracyLayer layer(layer_param(R"(name: "acc" type: "Accuracy")"));
  LayerHarness h;
  h.setup(layer, {&s, &l}, {&acc});
  layer.forward({&s, &l}, {&acc});
  EXPECT_GT(expect_correct, 0);
  EXPECT_FLOAT_EQ(acc.cdata()[0], static_cast<float>(expect_correct) / (N * H));
}

TEST(AccuracyLayer, NoBackward) {
  Blob s, l, acc;
  set_scores(s, {{0.1f, 0.9f}});
  set_labels(l, {1});
  AccuracyLayer layer(layer_param(R"(name: "acc" type: "Accuracy")"));
  LayerHarness h;
  h.setup(layer, {&s, &l}, {&acc});
  EXPECT_FALSE(layer.can_backward_to(0));
  EXPECT_FALSE(layer.can_backward_to(1));
  EXPECT_NO_THROW(layer.backward({&acc}, {false, false}, {&s, &l}));
  EXPECT_THROW(layer.backward({&acc}, {true, false}, {&s, &l}), Error);
}

TEST(AccuracyLayer, BadShapesAndLabels) {
  LayerHarness h;
  Blob s({4, 3}), l({3}), acc;
  {
    AccuracyLayer layer(layer_param(R"(name: "acc" type: "Accuracy")"));
    EXPECT_THROW(h.setup(layer, {&s, &l}, {&acc}), Error);  // 3 labels for 4 samples
  }
  {
    AccuracyLayer layer(layer_param(R"(name: "acc" type: "Accuracy" accuracy_param { top_k: 4 })"));
    Blob l4({4});
    EXPECT_THROW(h.setup(layer, {&s, &l4}, {&acc}), Error);  // top_k > classes
  }
  {
    AccuracyLayer layer(layer_param(R"(name: "acc" type: "Accuracy")"));
    Blob l4({4});
    h.setup(layer, {&s, &l4}, {&acc});
    l4.mutable_data()[2] = 3;  // class 3 of 3
    EXPECT_THROW(layer.forward({&s, &l4}, {&acc}), Error);
  }
}

}  // namespace coco::testing
