#include "layers/batch_norm_layer.h"

#include <cmath>

#include "engine/common.h"
#include "tests/batch_norm_reference.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

TEST(BatchNormLayer, TrainingForwardAndRunningSums) {
  auto p = layer_param(R"(name: "bn" type: "BatchNorm" batch_norm_param { moving_average_fraction: 0.9 eps: 1e-4 })");
  BatchNormLayer layer(p);
  Blob x({3, 4, 2, 3}), y;
  fill_uniform(x, -2, 3, 7);
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  ASSERT_EQ(layer.blobs().size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(layer.param_learnable(i));
  layer.forward({&x}, {&y});
  std::vector<double> mean, var;
  channel_stats(x, mean, var);
  const int64_t C = 4, S = 6, m = 18;
  for (int64_t i = 0; i < x.count(); ++i) {
    const int64_t c = (i / S) % C;
    EXPECT_NEAR(y.cdata()[i], (x.cdata()[i] - mean[c]) / std::sqrt(var[c] + 1e-4), 1e-4) << i;
  }
  EXPECT_FLOAT_EQ(layer.blobs()[2]->cdata()[0], 1.0f);
  for (int64_t c = 0; c < C; ++c) {
    EXPECT_NEAR(layer.blobs()[0]->cdata()[c], mean[c], 1e-5);
    EXPECT_NEAR(layer.blobs()[1]->cdata()[c], var[c] * m / (m - 1), 1e-5);
  }
  // A second batch: sums decay by the fraction and the factor counts 0.9 + 1.
  Blob x2({3, 4, 2, 3});
  fill_uniform(x2, -1, 1, 8);
  layer.forward({&x2}, {&y});
  std::vector<double> mean2, var2;
  channel_stats(x2, mean2, var2);
  EXPECT_FLOAT_EQ(layer.blobs()[2]->cdata()[0], 1.9f);
  for (int64_t c = 0; c < C; ++c) {
    EXPECT_NEAR(layer.blobs()[0]->cdata()[c], 0.9 * mean[c] + mean2[c], 1e-5);
    EXPECT_NEAR(layer.blobs()[1]->cdata()[c], 0.9 * var[c] * m / (m - 1) + var2[c] * m / (m - 1), 1e-5);
  }
}

TEST(BatchNormLayer, TestPhaseUsesStoredSumsOverFactor) {
  auto p = layer_param(R"(name: "bn" type: "BatchNorm")");
  BatchNormLayer layer(p);
  Blob x({2, 3, 5}), y;
  fill_uniform(x, -1, 1, 3);
  LayerHarness h;
  h.ctx.phase = Phase::kTest;
  h.setup(layer, {&x}, {&y});
  const float sums_mean[3] = {0.5f, -1.0f, 2.0f}, sums_var[3] = {2.0f, 0.5f, 1.0f};
  for (int c = 0; c < 3; ++c) {
    layer.blobs()[0]->mutable_data()[c] = sums_mean[c];
    layer.blobs()[1]->mutable_data()[c] = sums_var[c];
  }
  layer.blobs()[2]->mutable_data()[0] = 2.0f;
  layer.forward({&x}, {&y});
  for (int64_t i = 0; i < x.count(); ++i) {
    const int c = (i / 5) % 3;
    EXPECT_NEAR(y.cdata()[i], (x.cdata()[i] - sums_mean[c] / 2) / std::sqrt(sums_var[c] / 2 + 1e-5), 1e-5);
  }
  EXPECT_FLOAT_EQ(layer.blobs()[2]->cdata()[0], 2.0f);  // no update at TEST
  // A fresh layer (factor 0) normalises with zero statistics, as Caffe does.
  layer.blobs()[2]->mutable_data()[0] = 0;
  layer.forward({&x}, {&y});
  for (int64_t i = 0; i < x.count(); ++i) EXPECT_NEAR(y.cdata()[i], x.cdata()[i] / std::sqrt(1e-5), 1e-2);
}

TEST(BatchNormLayer, GradientCheckBatchStatistics) {
  for (Shape s : {Shape{2, 3, 3, 2}, Shape{1, 3, 2, 3}, Shape{5, 4}}) {
    auto p = layer_param(R"(name: "bn" type: "BatchNorm")");
    BatchNormLayer layer(p);
    Blob x(s), y;
    fill_uniform(x, -1, 2, 11);
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
    GradCheckOptions o;
    o.check_params = false;  // running sums only: nothing learnable
    GradientChecker(o).check(layer, {&x}, {&y});
  }
}

TEST(BatchNormLayer, GradientCheckGlobalStatistics) {
  auto p = layer_param(R"(name: "bn" type: "BatchNorm" batch_norm_param { use_global_stats: true })");
  BatchNormLayer layer(p);
  Blob x({2, 3, 2, 3}), y;
  fill_uniform(x, -1, 1, 5);
  LayerHarness h;  // TRAIN phase: use_global_stats overrides the phase default
  h.setup(layer, {&x}, {&y});
  for (int c = 0; c < 3; ++c) {
    layer.blobs()[0]->mutable_data()[c] = 0.3f * c;
    layer.blobs()[1]->mutable_data()[c] = 0.5f + c;
  }
  layer.blobs()[2]->mutable_data()[0] = 1.5f;
  GradCheckOptions o;
  o.check_params = false;
  GradientChecker(o).check(layer, {&x}, {&y});
  // Global statistics: the map is affine, dx = dy / sqrt(var / factor + eps).
  layer.forward({&x}, {&y});
  for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = 1.0f;
  layer.backward({&y}, {true}, {&x});
  EXPECT_NEAR(x.cdiff()[0], 1 / std::sqrt(0.5 / 1.5 + 1e-5), 1e-5);
  EXPECT_NEAR(x.cdiff()[x.count() - 1], 1 / std::sqrt(2.5 / 1.5 + 1e-5), 1e-5);
}

// In place, and a later in-place layer scribbling over the top before backward:
// the kept normalised values make backward independent of the top's data.
TEST(BatchNormLayer, InPlaceEqualsOutOfPlace) {
  auto p = layer_param(R"(name: "bn" type: "BatchNorm")");
  BatchNormLayer a(p), b(p);
  Blob x({3, 2, 5}), y, z({3, 2, 5});
  fill_uniform(x, -1, 1, 3);
  z.data().copy_from(x.data());
  LayerHarness h;
  h.setup(a, {&x}, {&y});
  h.setup(b, {&z}, {&z});
  a.forward({&x}, {&y});
  b.forward({&z}, {&z});
  for (int64_t i = 0; i < y.count(); ++i) EXPECT_EQ(y.cdata()[i], z.cdata()[i]);
  fill_uniform(z, 5, 6, 9);  // as a following in-place ReLU/Scale might
  for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = z.mutable_diff()[i] = std::sin(0.7f * i);
  a.backward({&y}, {true}, {&x});
  b.backward({&z}, {true}, {&z});
  for (int64_t i = 0; i < y.count(); ++i) EXPECT_EQ(x.cdiff()[i], z.cdiff()[i]);
  for (int i = 0; i < 3; ++i)
    for (int64_t k = 0; k < a.blobs()[i]->count(); ++k) EXPECT_EQ(a.blobs()[i]->cdata()[k], b.blobs()[i]->cdata()[k]);
}

TEST(BatchNormLayer, BadConfigAndShapes) {
  Blob x({2, 3, 4}), y;
  LayerHarness h;
  {
    BatchNormLayer layer(layer_param(R"(name: "bn" type: "BatchNorm" batch_norm_param { eps: 0 })"));
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error);
  }
  {
    BatchNormLayer layer(layer_param(R"(name: "bn" type: "BatchNorm" batch_norm_param { moving_average_fraction: 1.5 })"));
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error);
  }
  {
    BatchNormLayer layer(layer_param(R"(name: "bn" type: "BatchNorm")"));
    for (int i = 0; i < 3; ++i) layer.blobs().push_back(std::make_shared<Blob>(Shape{4}));  // loaded for 4 channels
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error);
  }
  {
    BatchNormLayer layer(layer_param(R"(name: "bn" type: "BatchNorm")"));
    h.setup(layer, {&x}, {&y});
    Blob other({2, 5, 4});
    EXPECT_THROW(layer.reshape({&other}, {&y}), Error);
  }
}

}  // namespace coco::testing
