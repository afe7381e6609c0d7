#include "layers/scale_layer.h"

#include <cmath>

#include "engine/common.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

// y[i] from the definition: x viewed as (outer, D, inner), scale and bias per d.
static void expect_scaled(const Blob& x, const Blob& y, const float* s, const float* b, int64_t outer, int64_t D,
                          int64_t inner) {
  ASSERT_EQ(y.shape(), x.shape());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t d = 0; d < D; ++d)
      for (int64_t j = 0; j < inner; ++j) {
        const int64_t i = (o * D + d) * inner + j;
        EXPECT_FLOAT_EQ(y.cdata()[i], x.cdata()[i] * s[d] + (b ? b[d] : 0.0f)) << i;
      }
}

TEST(ScaleLayer, DefaultFillerIsOne) {
  ScaleLayer layer(layer_param(R"(name: "s" type: "Scale")"));
  Blob x({2, 3, 4}), y;
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  ASSERT_EQ(layer.blobs().size(), 1u);
  ASSERT_EQ(layer.blobs()[0]->shape(), Shape({3}));
  for (int c = 0; c < 3; ++c) EXPECT_EQ(layer.blobs()[0]->cdata()[c], 1.0f);
}

TEST(ScaleLayer, ForwardAxesVariants) {
  struct Case { const char* text; int64_t outer, D, inner; };
  const Case cases[] = {
      {R"(name: "s" type: "Scale" scale_param { filler { type: "uniform" min: -2 max: 2 } bias_term: true
           bias_filler { type: "uniform" min: -1 max: 1 } })", 2, 3, 20},
      {R"(name: "s" type: "Scale" scale_param { axis: 1 num_axes: 2 filler { type: "uniform" } })", 2, 12, 5},
      {R"(name: "s" type: "Scale" scale_param { axis: -2 num_axes: -1 filler { type: "uniform" } bias_term: true })", 6, 20, 1},
      {R"(name: "s" type: "Scale" scale_param { axis: 0 num_axes: 0 filler { type: "constant" value: 3 } })", 1, 1, 120},
  };
  for (const auto& cs : cases) {
    ScaleLayer layer(layer_param(cs.text));
    Blob x({2, 3, 4, 5}), y;
    fill_uniform(x, -1, 1, 7);
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
    ASSERT_EQ(layer.blobs()[0]->count(), cs.D) << cs.text;
    layer.forward({&x}, {&y});
    const float* b = layer.blobs().size() > 1 ? layer.blobs()[1]->cdata() : nullptr;
    expect_scaled(x, y, layer.blobs()[0]->cdata(), b, cs.outer, cs.D, cs.inner);
  }
}

TEST(ScaleLayer, GradientCheckLearned) {
  for (Shape s : {Shape{2, 3, 3, 2}, Shape{1, 5, 3}, Shape{3, 4}}) {
    ScaleLayer layer(layer_param(R"(name: "s" type: "Scale" scale_param { filler { type: "uniform" min: -1 max: 1 }
                                    bias_term: true bias_filler { type: "uniform" min: -1 max: 1 } })"));
    Blob x(s), y;
    fill_uniform(x, -1, 1, 11);
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
    GradientChecker().check(layer, {&x}, {&y});
  }
}

TEST(ScaleLayer, ScaleFromSecondBottom) {
  ScaleLayer layer(layer_param(R"(name: "s" type: "Scale" scale_param { bias_term: true
                                  bias_filler { type: "uniform" min: -1 max: 1 } })"));
  Blob x({2, 3, 4, 3}), s({3, 4}), y;
  fill_uniform(x, -1, 1, 5);
  fill_uniform(s, -1, 1, 6);
  LayerHarness h;
  h.setup(layer, {&x, &s}, {&y});
  ASSERT_EQ(layer.blobs().size(), 1u);  // the bias only
  ASSERT_EQ(layer.blobs()[0]->shape(), Shape({3, 4}));
  layer.forward({&x, &s}, {&y});
  expect_scaled(x, y, s.cdata(), layer.blobs()[0]->cdata(), 2, 12, 3);
  GradientChecker().check(layer, {&x, &s}, {&y});
}

TEST(ScaleLayer, InPlaceEqualsOutOfPlace) {
  auto p = layer_param(R"(name: "s" type: "Scale" scale_param { filler { type: "uniform" min: -1 max: 1 } bias_term: true })");
  ScaleLayer a(p), b(p);
  Blob x({3, 4, 5}), y, z({3, 4, 5});
  fill_uniform(x, -1, 1, 3);
  z.data().copy_from(x.data());
  LayerHarness ha, hb;  // same rng seed: same scales
  ha.setup(a, {&x}, {&y});
  hb.setup(b, {&z}, {&z});
  a.forward({&x}, {&y});
  b.forward({&z}, {&z});
  for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = z.mutable_diff()[i] = std::cos(0.3f * i);
  for (Layer* l : {static_cast<Layer*>(&a), static_cast<Layer*>(&b)})
    for (auto& blob : l->blobs()) blob->diff().zero();
  a.backward({&y}, {true}, {&x});
  b.backward({&z}, {true}, {&z});
  for (int64_t i = 0; i < y.count(); ++i) {
    EXPECT_EQ(y.cdata()[i], z.cdata()[i]);
    EXPECT_EQ(x.cdiff()[i], z.cdiff()[i]);
  }
  for (int k = 0; k < 2; ++k)
    for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(a.blobs()[k]->cdiff()[c], b.blobs()[k]->cdiff()[c]);
}

TEST(ScaleLayer, ParamDiffsAccumulate) {
  ScaleLayer layer(layer_param(R"(name: "s" type: "Scale" scale_param { bias_term: true })"));
  Blob x({2, 3, 4}), y;
  fill_uniform(x, -1, 1, 5);
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  layer.forward({&x}, {&y});
  for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = 0.1f * i;
  layer.backward({&y}, {true}, {&x});
  const auto scale_once = layer.blobs()[0]->diff().to_vector(), bias_once = layer.blobs()[1]->diff().to_vector();
  layer.backward({&y}, {false}, {&x});
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_FLOAT_EQ(layer.blobs()[0]->cdiff()[c], 2 * scale_once[c]);
    EXPECT_FLOAT_EQ(layer.blobs()[1]->cdiff()[c], 2 * bias_once[c]);
  }
}

TEST(ScaleLayer, BadConfigAndShapes) {
  LayerHarness h;
  Blob x({2, 3, 4}), y;
  {
    ScaleLayer layer(layer_param(R"(name: "s" type: "Scale" scale_param { axis: 1 num_axes: 3 })"));
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error);
  }
  {
    ScaleLayer layer(layer_param(R"(name: "s" type: "Scale" scale_param { axis: 3 })"));
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error);
  }
  {
    ScaleLayer layer(layer_param(R"(name: "s" type: "Scale")"));
    Blob s({4});  // bottom 0's axis 1 has 3
    EXPECT_THROW(h.setup(layer, {&x, &s}, {&y}), Error);
  }
  {
    ScaleLayer layer(layer_param(R"(name: "s" type: "Scale")"));
    layer.blobs().push_back(std::make_shared<Blob>(Shape{5}));  // loaded, wrong size
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error);
  }
}

}  // namespace coco::testing
