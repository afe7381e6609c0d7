#include "layers/prelu_layer.h"

#include <cmath>

#include "engine/common.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

TEST(PReLULayer, DefaultSlopeIsQuarter) {
  PReLULayer layer(layer_param(R"(name: "prelu" type: "PReLU")"));
  Blob x({2, 3, 2}), y;
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  ASSERT_EQ(layer.blobs().size(), 1u);
  ASSERT_EQ(layer.blobs()[0]->shape(), Shape({3}));
  for (int c = 0; c < 3; ++c) EXPECT_EQ(layer.blobs()[0]->cdata()[c], 0.25f);
}

TEST(PReLULayer, ForwardMatchesDefinition) {
  for (bool shared : {false, true}) {
    auto p = layer_param(R"(name: "prelu" type: "PReLU" prelu_param { filler { type: "uniform" min: -0.5 max: 0.9 } })");
    p.mutable_prelu_param()->set_channel_shared(shared);
    PReLULayer layer(p);
    Blob x({2, 3, 4, 5}), y;
    fill_uniform(x, -1, 1, 7);
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
    ASSERT_EQ(layer.blobs()[0]->count(), shared ? 1 : 3);
    layer.forward({&x}, {&y});
    for (int64_t i = 0; i < x.count(); ++i) {
      const float a = layer.blobs()[0]->cdata()[shared ? 0 : (i / 20) % 3];
      const float v = x.cdata()[i];
      EXPECT_FLOAT_EQ(y.cdata()[i], v > 0 ? v : a * v);
    }
  }
}

TEST(PReLULayer, GradientCheck) {
  for (bool shared : {false, true})
    for (Shape s : {Shape{2, 3, 3, 2}, Shape{1, 5, 3}, Shape{4, 3}}) {
      auto p = layer_param(R"(name: "prelu" type: "PReLU" prelu_param { filler { type: "uniform" min: 0.1 max: 0.6 } })");
      p.mutable_prelu_param()->set_channel_shared(shared);
      PReLULayer layer(p);
      Blob x(s), y;
      fill_uniform(x, -1, 1, 11);
      LayerHarness h;
      h.setup(layer, {&x}, {&y});
      GradCheckOptions o;
      o.kink = 0;
      o.kink_range = 0.02;  // the step is 1e-2: stay clear of the kink at 0
      GradientChecker(o).check(layer, {&x}, {&y});
    }
}

// In place keeps a copy of x: slope and bottom gradients equal the out-of-place ones.
TEST(PReLULayer, InPlaceEqualsOutOfPlace) {
  for (bool shared : {false, true}) {
    auto p = layer_param(R"(name: "prelu" type: "PReLU" prelu_param { filler { type: "uniform" min: -0.5 max: 0.5 } })");
    p.mutable_prelu_param()->set_channel_shared(shared);
    PReLULayer a(p), b(p);
    Blob x({3, 4, 5}), y, z({3, 4, 5});
    fill_uniform(x, -1, 1, 3);
    z.data().copy_from(x.data());
    LayerHarness ha, hb;  // same rng seed: same slopes
    ha.setup(a, {&x}, {&y});
    hb.setup(b, {&z}, {&z});
    a.forward({&x}, {&y});
    b.forward({&z}, {&z});
    for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = z.mutable_diff()[i] = 0.5f + std::sin(1.0f * i);
    a.blobs()[0]->diff().zero();
    b.blobs()[0]->diff().zero();
    a.backward({&y}, {true}, {&x});
    b.backward({&z}, {true}, {&z});
    for (int64_t i = 0; i < y.count(); ++i) {
      EXPECT_EQ(y.cdata()[i], z.cdata()[i]);
      EXPECT_EQ(x.cdiff()[i], z.cdiff()[i]);
    }
    for (int64_t c = 0; c < a.blobs()[0]->count(); ++c) {
      EXPECT_EQ(a.blobs()[0]->cdiff()[c], b.blobs()[0]->cdiff()[c]);
      EXPECT_NE(a.blobs()[0]->cdiff()[c], 0.0f);
    }
  }
}

TEST(PReLULayer, SlopeDiffAccumulates) {
  PReLULayer layer(layer_param(R"(name: "prelu" type: "PReLU")"));
  Blob x({2, 3, 4}), y;
  fill_uniform(x, -1, 1, 5);
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  layer.forward({&x}, {&y});
  for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = 1.0f;
  layer.backward({&y}, {true}, {&x});
  const auto once = layer.blobs()[0]->diff().to_vector();
  layer.backward({&y}, {false}, {&x});
  for (size_t c = 0; c < once.size(); ++c) {
    EXPECT_NE(once[c], 0.0f);
    EXPECT_FLOAT_EQ(layer.blobs()[0]->cdiff()[c], 2 * once[c]);
  }
}

TEST(PReLULayer, BadShapes) {
  LayerHarness h;
  Blob y;
  {
    PReLULayer layer(layer_param(R"(name: "prelu" type: "PReLU")"));
    Blob flat({6});
    EXPECT_THROW(h.setup(layer, {&flat}, {&y}), Error);
  }
  {
    PReLULayer layer(layer_param(R"(name: "prelu" type: "PReLU")"));
    layer.blobs().push_back(std::make_shared<Blob>(Shape{4}));  // loaded for 4 channels
    Blob x({2, 3});
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error);
  }
  {
    PReLULayer layer(layer_param(R"(name: "prelu" type: "PReLU")"));
    Blob x({2, 3}), other({2, 4});
    h.setup(layer, {&x}, {&y});
    EXPECT_THROW(layer.reshape({&other}, {&y}), Error);
  }
}

}  // namespace coco::testing
