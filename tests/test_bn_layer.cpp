#include "layers/bn_layer.h"

#include <cmath>

#include "engine/common.h"
#include "layers/batch_norm_layer.h"
#include "tests/batch_norm_reference.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

// The seed's BN block (materials_for_face/ir235_release.prototxt), verbatim.
static const char* kSeedBN = R"(
  name: "stem.step1.3x3.1.bn"
  type: "BN"
  bottom: "stem.step1.3x3.1.conv"
  top: "stem.step1.3x3.1"
  param { lr_mult: 1.0 decay_mult: 0.0 }
  param { lr_mult: 1.0 decay_mult: 0.0 }
  param { lr_mult: 0.0 decay_mult: 0.0 }
  param { lr_mult: 0.0 decay_mult: 0.0 }
  bn_param {
    sync_forward: false
    moving_average: true
    decay: 0.99
    scale_filler {
      type: "constant"
      value: 1.0
    }
    shift_filler {
      type: "constant"
      value: 0.0
    }
  })";

static void set_params(BNLayer& layer, uint64_t seed) {
  Blob& scale = *layer.blobs()[0];
  Blob& shift = *layer.blobs()[1];
  fill_uniform(scale, 0.5f, 2.0f, seed);
  fill_uniform(shift, -1.0f, 1.0f, seed + 1);
}

TEST(BNLayer, ParsesTheSeedBlock) {
  auto p = layer_param(kSeedBN);
  ASSERT_EQ(p.param_size(), 4);
  EXPECT_EQ(p.param(0).lr_mult(), 1.0f);
  EXPECT_EQ(p.param(2).lr_mult(), 0.0f);
  EXPECT_FALSE(p.bn_param().sync_forward());
  EXPECT_TRUE(p.bn_param().moving_average());
  EXPECT_FLOAT_EQ(p.bn_param().decay(), 0.99f);
  EXPECT_EQ(p.bn_param().scale_filler().type(), "constant");
  EXPECT_FLOAT_EQ(p.bn_param().scale_filler().value(), 1.0f);
  BNLayer layer(p);
  Blob x({2, 3, 4, 5}), y;
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  ASSERT_EQ(layer.blobs().size(), 4u);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(layer.blobs()[i]->shape(), Shape({3}));
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(layer.blobs()[0]->cdata()[c], 1.0f);  // scale
    EXPECT_EQ(layer.blobs()[1]->cdata()[c], 0.0f);  // shift
    EXPECT_EQ(layer.blobs()[2]->cdata()[c], 0.0f);  // running mean
    EXPECT_EQ(layer.blobs()[3]->cdata()[c], 1.0f);  // running variance
  }
  EXPECT_TRUE(layer.param_learnable(0));
  EXPECT_TRUE(layer.param_learnable(1));
  EXPECT_FALSE(layer.param_learnable(2));
  EXPECT_FALSE(layer.param_learnable(3));
  EXPECT_EQ(y.shape(), x.shape());
}

TEST(BNLayer, TrainingForwardAndRunningAverages) {
  BNLayer layer(layer_param(kSeedBN));
  Blob x({3, 4, 3, 1}), y;
  fill_uniform(x, -2, 3, 7);
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  set_params(layer, 21);
  layer.forward({&x}, {&y});
  std::vector<double> mean, var;
  channel_stats(x, mean, var);
  const float* g = layer.blobs()[0]->cdata();
  const float* b = layer.blobs()[1]->cdata();
  for (int64_t i = 0; i < x.count(); ++i) {
    const int64_t c = (i / 3) % 4;
    EXPECT_NEAR(y.cdata()[i], g[c] * (x.cdata()[i] - mean[c]) / std::sqrt(var[c] + 1e-5) + b[c], 1e-4) << i;
  }
  for (int64_t c = 0; c < 4; ++c) {
    EXPECT_NEAR(layer.blobs()[2]->cdata()[c], 0.01 * mean[c], 1e-6);
    EXPECT_NEAR(layer.blobs()[3]->cdata()[c], 0.99 + 0.01 * var[c], 1e-6);
  }
}

TEST(BNLayer, TestPhaseUsesRunningStatistics) {
  LayerHarness h;
  h.ctx.phase = Phase::kTest;
  BNLayer layer(layer_param(kSeedBN));
  Blob x({2, 3, 2, 2}), y;
  fill_uniform(x, -1, 1, 3);
  h.setup(layer, {&x}, {&y});
  set_params(layer, 5);
  const float rm[3] = {0.2f, -0.4f, 1.0f}, rv[3] = {0.5f, 2.0f, 1.5f};
  for (int c = 0; c < 3; ++c) {
    layer.blobs()[2]->mutable_data()[c] = rm[c];
    layer.blobs()[3]->mutable_data()[c] = rv[c];
  }
  layer.forward({&x}, {&y});
  const float* g = layer.blobs()[0]->cdata();
  const float* b = layer.blobs()[1]->cdata();
  for (int64_t i = 0; i < x.count(); ++i) {
    const int c = (i / 4) % 3;
    EXPECT_NEAR(y.cdata()[i], g[c] * (x.cdata()[i] - rm[c]) / std::sqrt(rv[c] + 1e-5) + b[c], 1e-5);
  }
  for (int c = 0; c < 3; ++c) EXPECT_EQ(layer.blobs()[2]->cdata()[c], rm[c]);  // not updated
  // moving_average off: TEST normalises with the batch, running stats untouched.
  auto p = layer_param(kSeedBN);
  p.mutable_bn_param()->set_moving_average(false);
  BNLayer batch(p);
  Blob y2;
  h.setup(batch, {&x}, {&y2});
  batch.forward({&x}, {&y2});
  std::vector<double> mean, var;
  channel_stats(x, mean, var);
  for (int64_t i = 0; i < x.count(); ++i) {
    const int c = (i / 4) % 3;
    EXPECT_NEAR(y2.cdata()[i], (x.cdata()[i] - mean[c]) / std::sqrt(var[c] + 1e-5), 1e-4);
  }
  EXPECT_EQ(batch.blobs()[3]->cdata()[0], 1.0f);
}

// BN with unit scale and zero shift is BatchNorm: the shared math agrees.
TEST(BNLayer, MatchesBatchNormWithUnitScale) {
  BNLayer bn(layer_param(kSeedBN));
  BatchNormLayer plain(layer_param(R"(name: "plain" type: "BatchNorm")"));
  Blob x({2, 5, 3, 3}), y1, y2;
  fill_uniform(x, -3, 1, 13);
  LayerHarness h;
  h.setup(bn, {&x}, {&y1});
  h.setup(plain, {&x}, {&y2});
  bn.forward({&x}, {&y1});
  plain.forward({&x}, {&y2});
  for (int64_t i = 0; i < x.count(); ++i) EXPECT_FLOAT_EQ(y1.cdata()[i], y2.cdata()[i]);
}

TEST(BNLayer, GradientCheckBatchStatistics) {
  for (Shape s : {Shape{2, 3, 3, 2}, Shape{1, 3, 2, 3}, Shape{5, 2}}) {
    BNLayer layer(layer_param(kSeedBN));
    Blob x(s), y;
    fill_uniform(x, -1, 2, 11);
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
    set_params(layer, 17);
    // Scale and shift are checked; the running statistics do not affect a
    // training forward, so their numeric gradient is 0, as is the analytic one.
    GradientChecker().check(layer, {&x}, {&y});
  }
}

// Central differences of J = sum w * top with respect to one parameter blob.
static void check_param_numerically(Layer& layer, Blob& x, Blob& y, int param, const std::vector<float>& w,
                                    const std::vector<float>& analytic) {
  Blob& b = *layer.blobs()[param];
  for (int64_t k = 0; k < b.count(); ++k) {
    const float orig = b.cdata()[k];
    double j[2];
    for (int sign = 0; sign < 2; ++sign) {
      b.mutable_data()[k] = orig + (sign ? -1e-2f : 1e-2f);
      layer.forward({&x}, {&y});
      j[sign] = 0;
      for (int64_t i = 0; i < y.count(); ++i) j[sign] += static_cast<double>(w[i]) * y.cdata()[i];
    }
    b.mutable_data()[k] = orig;
    const double numeric = (j[0] - j[1]) / 2e-2;
    EXPECT_NEAR(analytic[k], numeric, 1e-3 * std::max({1.0, std::fabs(numeric)})) << "param " << param << " " << k;
  }
}

TEST(BNLayer, GradientCheckGlobalStatistics) {
  auto p = layer_param(kSeedBN);
  p.mutable_bn_param()->set_use_global_stats(true);
  BNLayer layer(p);
  Blob x({2, 3, 2, 3}), y;
  fill_uniform(x, -1, 1, 5);
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  set_params(layer, 9);
  for (int c = 0; c < 3; ++c) {
    layer.blobs()[2]->mutable_data()[c] = 0.1f * c;
    layer.blobs()[3]->mutable_data()[c] = 0.7f + c;
  }
  // The bottom; the running statistics are constants here (not learnable), so
  // the scale and shift are checked on their own below.
  GradCheckOptions o;
  o.check_params = false;
  GradientChecker(o).check(layer, {&x}, {&y});
  std::vector<float> w(y.count());
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::cos(1.3f * i);
  layer.forward({&x}, {&y});
  std::copy(w.begin(), w.end(), y.mutable_diff());
  for (auto& b : layer.blobs()) b->diff().zero();
  layer.backward({&y}, {false}, {&x});
  for (int prm : {0, 1}) check_param_numerically(layer, x, y, prm, w, layer.blobs()[prm]->diff().to_vector());
}

TEST(BNLayer, ParamDiffsAccumulate) {
  BNLayer layer(layer_param(kSeedBN));
  Blob x({2, 2, 3}), y;
  fill_uniform(x, -1, 1, 4);
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  layer.forward({&x}, {&y});
  for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = 0.25f * i - 1;
  layer.backward({&y}, {true}, {&x});
  const auto once = layer.blobs()[1]->diff().to_vector();
  layer.backward({&y}, {true}, {&x});
  for (size_t c = 0; c < once.size(); ++c) EXPECT_FLOAT_EQ(layer.blobs()[1]->cdiff()[c], 2 * once[c]);
}

TEST(BNLayer, InPlaceEqualsOutOfPlace) {
  BNLayer a(layer_param(kSeedBN)), b(layer_param(kSeedBN));
  Blob x({3, 2, 5}), y, z({3, 2, 5});
  fill_uniform(x, -1, 1, 3);
  z.data().copy_from(x.data());
  LayerHarness h;
  h.setup(a, {&x}, {&y});
  h.setup(b, {&z}, {&z});
  set_params(a, 2);
  set_params(b, 2);
  a.forward({&x}, {&y});
  b.forward({&z}, {&z});
  for (int64_t i = 0; i < y.count(); ++i) EXPECT_EQ(y.cdata()[i], z.cdata()[i]);
  for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = z.mutable_diff()[i] = std::sin(0.7f * i);
  a.backward({&y}, {true}, {&x});
  b.backward({&z}, {true}, {&z});
  for (int64_t i = 0; i < y.count(); ++i) EXPECT_EQ(x.cdiff()[i], z.cdiff()[i]);
  for (int i = 0; i < 2; ++i)
    for (int64_t k = 0; k < 2; ++k) EXPECT_EQ(a.blobs()[i]->cdiff()[k], b.blobs()[i]->cdiff()[k]);
}

TEST(BNLayer, LoadedCaffeShapedBlobsAndBadCases) {
  LayerHarness h;
  Blob x({2, 3, 4}), y;
  {
    BNLayer layer(layer_param(kSeedBN));  // the seed's caffemodels store (1, C, 1, 1)
    for (int i = 0; i < 4; ++i) layer.blobs().push_back(std::make_shared<Blob>(Shape{1, 3, 1, 1}));
    EXPECT_NO_THROW(h.setup(layer, {&x}, {&y}));
  }
  {
    BNLayer layer(layer_param(kSeedBN));
    for (int i = 0; i < 3; ++i) layer.blobs().push_back(std::make_shared<Blob>(Shape{3}));
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error);
  }
  {
    BNLayer layer(layer_param(kSeedBN));
    for (int i = 0; i < 4; ++i) layer.blobs().push_back(std::make_shared<Blob>(Shape{5}));
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error);
  }
  {
    BNLayer layer(layer_param(kSeedBN));
    Blob flat({6});
    EXPECT_THROW(h.setup(layer, {&flat}, {&y}), Error);
  }
  {
    auto p = layer_param(kSeedBN);
    p.mutable_bn_param()->set_decay(1.5f);
    BNLayer layer(p);
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error);
  }
}

}  // namespace coco::testing
