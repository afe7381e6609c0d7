#include "layers/softmax_loss_layer.h"

#include <cmath>

#include "engine/common.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

namespace {

// Straightforward reference: scores (outer, C, inner), labels (outer*inner).
// Returns the un-normalised sum of -log softmax(target) over non-ignored positions.
double reference_loss_sum(const Blob& z, const Blob& label, int64_t outer, int64_t c, int64_t inner,
                          int ignore, bool has_ignore, int64_t* valid) {
  double total = 0;
  *valid = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      const int l = static_cast<int>(label.cdata()[o * inner + in]);
      if (has_ignore && l == ignore) continue;
      double s = 0;
      for (int64_t k = 0; k < c; ++k) s += std::exp(double(z.cdata()[(o * c + k) * inner + in]));
      total += -std::log(std::exp(double(z.cdata()[(o * c + l) * inner + in])) / s);
      ++*valid;
    }
  return total;
}

void fill_labels(Blob& label, int c, uint64_t seed) {
  std::mt19937_64 g(seed);
  for (int64_t i = 0; i < label.count(); ++i) label.mutable_data()[i] = static_cast<float>(g() % c);
}

}  // namespace

TEST(SoftmaxWithLossLayer, ForwardMatchesDefinition) {
  auto p = layer_param(R"(name: "loss" type: "SoftmaxWithLoss")");
  // 2-D scores and 4-D scores with spatial positions (softmax over axis 1).
  for (Shape s : {Shape{5, 7}, Shape{2, 3, 2, 3}, Shape{1, 4}}) {
    SoftmaxWithLossLayer layer(p);
    Blob z(s), label({s[0] * shape_count(s, 2)}), loss, prob;
    fill_uniform(z, -3, 3, 7);
    fill_labels(label, static_cast<int>(s[1]), 9);
    LayerHarness h;
    h.setup(layer, {&z, &label}, {&loss, &prob});
    layer.forward({&z, &label}, {&loss, &prob});
    ASSERT_EQ(loss.shape(), (Shape{1}));
    ASSERT_EQ(prob.shape(), s);
    const int64_t outer = s[0], c = s[1], inner = shape_count(s, 2);
    int64_t valid;
    const double sum = reference_loss_sum(z, label, outer, c, inner, 0, false, &valid);
    EXPECT_NEAR(loss.cdata()[0], sum / valid, 1e-5);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t in = 0; in < inner; ++in) {
        double s2 = 0;
        for (int64_t k = 0; k < c; ++k) s2 += std::exp(double(z.cdata()[(o * c + k) * inner + in]));
        for (int64_t k = 0; k < c; ++k)
          EXPECT_NEAR(prob.cdata()[(o * c + k) * inner + in],
                      std::exp(double(z.cdata()[(o * c + k) * inner + in])) / s2, 1e-6);
      }
  }
}

TEST(SoftmaxWithLossLayer, NormalizationModesAndIgnoreLabel) {
  Blob z({4, 3, 2}), label({8}), loss;
  fill_uniform(z, -2, 2, 3);
  const float labels[8] = {0, 2, 1, 1, 2, 0, 1, 2};
  for (int i = 0; i < 8; ++i) label.mutable_data()[i] = labels[i];
  int64_t valid;
  const double sum = reference_loss_sum(z, label, 4, 3, 2, 1, true, &valid);
  ASSERT_EQ(valid, 5);
  struct Case { const char* cfg; double denom; };
  const Case cases[] = {
      {"loss_param { ignore_label: 1 }", 5},  // VALID is the default
      {"loss_param { ignore_label: 1 normalization: VALID }", 5},
      {"loss_param { ignore_label: 1 normalization: FULL }", 8},
      {"loss_param { ignore_label: 1 normalization: BATCH_SIZE }", 4},
      {"loss_param { ignore_label: 1 normalization: NONE }", 1},
      {"loss_param { ignore_label: 1 normalize: false }", 4},  // legacy: BATCH_SIZE
      {"loss_param { ignore_label: 1 normalize: true }", 5},   // legacy: VALID
  };
  for (const auto& cs : cases) {
    SoftmaxWithLossLayer layer(layer_param(std::string(R"(name: "loss" type: "SoftmaxWithLoss" )") + cs.cfg));
    LayerHarness h;
    h.setup(layer, {&z, &label}, {&loss});
    layer.forward({&z, &label}, {&loss});
    EXPECT_NEAR(loss.cdata()[0], sum / cs.denom, 1e-5) << cs.cfg;
    // Ignored positions get zero gradient; the rest sum to zero over the classes.
    loss.mutable_diff()[0] = 1;
    layer.backward({&loss}, {true, false}, {&z, &label});
    for (int q = 0; q < 8; ++q) {
      const int o = q / 2, in = q % 2;
      double col = 0;
      for (int k = 0; k < 3; ++k) {
        const float g = z.cdiff()[(o * 3 + k) * 2 + in];
        if (labels[q] == 1) {
          EXPECT_EQ(g, 0.0f) << cs.cfg;
        }
        col += g;
      }
      EXPECT_NEAR(col, 0.0, 1e-6);
    }
  }
}

TEST(SoftmaxWithLossLayer, GradientCheck) {
  for (Shape s : {Shape{5, 7}, Shape{1, 3}, Shape{2, 3, 3, 1}}) {
    SoftmaxWithLossLayer layer(layer_param(R"(name: "loss" type: "SoftmaxWithLoss")"));
    Blob z(s), label({s[0] * shape_count(s, 2)}), loss;
    fill_uniform(z, -2, 2, 13);
    fill_labels(label, static_cast<int>(s[1]), 17);
    LayerHarness h;
    h.setup(layer, {&z, &label}, {&loss});
    GradientChecker().check(layer, {&z, &label}, {&loss});
  }
  // With an ignored label and FULL normalisation.
  SoftmaxWithLossLayer layer(layer_param(
      R"(name: "loss" type: "SoftmaxWithLoss" loss_param { ignore_label: 2 normalization: FULL })"));
  Blob z({6, 4}), label({6}), loss;
  fill_uniform(z, -2, 2, 19);
  const float labels[6] = {2, 0, 3, 2, 1, 0};
  for (int i = 0; i < 6; ++i) label.mutable_data()[i] = labels[i];
  LayerHarness h;
  h.setup(layer, {&z, &label}, {&loss});
  GradientChecker().check(layer, {&z, &label}, {&loss});
}

TEST(SoftmaxWithLossLayer, BackwardScalesByLossWeight) {
  SoftmaxWithLossLayer layer(layer_param(R"(name: "loss" type: "SoftmaxWithLoss")"));
  Blob z({3, 4}), label({3}), loss;
  fill_uniform(z, -1, 1, 5);
  fill_labels(label, 4, 6);
  LayerHarness h;
  h.setup(layer, {&z, &label}, {&loss});
  layer.forward({&z, &label}, {&loss});
  loss.mutable_diff()[0] = 1;
  layer.backward({&loss}, {true, false}, {&z, &label});
  const std::vector<float> g1 = z.diff().to_vector();
  loss.mutable_diff()[0] = 2.5f;
  layer.backward({&loss}, {true, false}, {&z, &label});
  for (int i = 0; i < 12; ++i) {
    EXPECT_NEAR(z.cdiff()[i], 2.5f * g1[i], 1e-6);
    // (p - onehot) / N by definition
    const int n = i / 4, k = i % 4;
    double s = 0;
    for (int j = 0; j < 4; ++j) s += std::exp(double(z.cdata()[n * 4 + j]));
    const double pk = std::exp(double(z.cdata()[i])) / s;
    EXPECT_NEAR(g1[i], (pk - (k == static_cast<int>(label.cdata()[n]) ? 1 : 0)) / 3, 1e-6);
  }
}

TEST(SoftmaxWithLossLayer, LargeScoresAreStable) {
  SoftmaxWithLossLayer layer(layer_param(R"(name: "loss" type: "SoftmaxWithLoss")"));
  Blob z({2, 3}), label({2}), loss;
  const float v[6] = {1000, 1001, 999, -1000, -1002, -1001};
  for (int i = 0; i < 6; ++i) z.mutable_data()[i] = v[i];
  label.mutable_data()[0] = 2;
  label.mutable_data()[1] = 0;
  LayerHarness h;
  h.setup(layer, {&z, &label}, {&loss});
  layer.forward({&z, &label}, {&loss});
  // Shifted by each row's max, the same values in double.
  auto lse = [](double a, double b, double c) {
    const double m = std::max({a, b, c});
    return m + std::log(std::exp(a - m) + std::exp(b - m) + std::exp(c - m));
  };
  const double want = ((lse(1000, 1001, 999) - 999) + (lse(-1000, -1002, -1001) + 1000)) / 2;
  EXPECT_NEAR(loss.cdata()[0], want, 1e-5);
  loss.mutable_diff()[0] = 1;
  layer.backward({&loss}, {true, false}, {&z, &label});
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(std::isfinite(z.cdiff()[i]));
}

TEST(SoftmaxWithLossLayer, BadLabelsAndShapes) {
  auto p = layer_param(R"(name: "loss" type: "SoftmaxWithLoss")");
  for (float bad : {4.0f, -1.0f, 1.5f}) {
    SoftmaxWithLossLayer layer(p);
    Blob z({3, 4}), label({3}), loss;
    label.data().zero();
    label.mutable_data()[2] = bad;
    LayerHarness h;
    h.setup(layer, {&z, &label}, {&loss});
    try {
      layer.forward({&z, &label}, {&loss});
      ADD_FAILURE() << "label " << bad << " accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("index 2"), std::string::npos) << msg;
      EXPECT_NE(msg.find("label " + (bad == 1.5f ? std::string("1.5") : std::to_string(int(bad)))),
                std::string::npos) << msg;
    }
  }
  {  // label count does not match
    SoftmaxWithLossLayer layer(p);
    Blob z({3, 4}), label({4}), loss;
    LayerHarness h;
    EXPECT_THROW(h.setup(layer, {&z, &label}, {&loss}), Error);
  }
  {  // axis out of range
    SoftmaxWithLossLayer layer(layer_param(R"(name: "loss" type: "SoftmaxWithLoss" softmax_param { axis: 2 })"));
    Blob z({3, 4}), label({3}), loss;
    LayerHarness h;
    EXPECT_THROW(h.setup(layer, {&z, &label}, {&loss}), Error);
  }
  {  // one bottom only
    SoftmaxWithLossLayer layer(p);
    Blob z({3, 4}), loss;
    LayerHarness h;
    EXPECT_THROW(h.setup(layer, {&z}, {&loss}), Error);
  }
  SoftmaxWithLossLayer layer(p);
  EXPECT_TRUE(layer.is_loss());
  EXPECT_TRUE(layer.can_backward_to(0));
  EXPECT_FALSE(layer.can_backward_to(1));
}

}  // namespace coco::testing
