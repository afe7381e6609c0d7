#include "layers/concat_layer.h"

#include "engine/common.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

TEST(ConcatLayer, ChannelsMatchDefinition) {
  ConcatLayer layer(layer_param(R"(name: "c" type: "Concat")"));
  Blob a({2, 1, 3, 2}), b({2, 4, 3, 2}), c({2, 2, 3, 2}), y;
  fill_uniform(a, -1, 1, 1);
  fill_uniform(b, -1, 1, 2);
  fill_uniform(c, -1, 1, 3);
  LayerHarness h;
  h.setup(layer, {&a, &b, &c}, {&y});
  ASSERT_EQ(y.shape(), Shape({2, 7, 3, 2}));
  layer.forward({&a, &b, &c}, {&y});
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t ch = 0; ch < 7; ++ch)
      for (int64_t s = 0; s < 6; ++s) {
        const Blob& src = ch < 1 ? a : ch < 5 ? b : c;
        const int64_t sc = ch < 1 ? ch : ch < 5 ? ch - 1 : ch - 5, C = src.shape(1);
        EXPECT_EQ(y.cdata()[(n * 7 + ch) * 6 + s], src.cdata()[(n * C + sc) * 6 + s]);
      }
  GradientChecker().check(layer, {&a, &b, &c}, {&y});
}

TEST(ConcatLayer, AxisVariants) {
  struct Case { const char* params; Shape a, b, out; };
  const Case cases[] = {
      {"concat_param { axis: 0 }", {1, 3}, {2, 3}, {3, 3}},
      {"concat_param { concat_dim: 0 }", {2, 3}, {1, 3}, {3, 3}},
      {"concat_param { axis: -1 }", {2, 3, 1}, {2, 3, 4}, {2, 3, 5}},
  };
  for (const auto& cs : cases) {
    ConcatLayer layer(layer_param(std::string(R"(name: "c" type: "Concat" )") + cs.params));
    Blob a(cs.a), b(cs.b), y;
    fill_uniform(a, -1, 1, 1);
    fill_uniform(b, -1, 1, 2);
    LayerHarness h;
    h.setup(layer, {&a, &b}, {&y});
    EXPECT_EQ(y.shape(), cs.out) << cs.params;
    GradientChecker().check(layer, {&a, &b}, {&y});
  }
}

TEST(ConcatLayer, OneBottomIsACopy) {
  ConcatLayer layer(layer_param(R"(name: "c" type: "Concat")"));
  Blob a({1, 3, 2}), y;
  fill_uniform(a, -1, 1, 1);
  LayerHarness h;
  h.setup(layer, {&a}, {&y});
  layer.forward({&a}, {&y});
  ASSERT_EQ(y.shape(), a.shape());
  for (int64_t i = 0; i < a.count(); ++i) EXPECT_EQ(y.cdata()[i], a.cdata()[i]);
}

TEST(ConcatLayer, BadConfigAndShapes) {
  LayerHarness h;
  Blob a({2, 3, 4}), b({2, 3, 5}), c({2, 3}), y;
  {
    ConcatLayer layer(layer_param(R"(name: "c" type: "Concat")"));  // axis 1: axis 2 differs
    EXPECT_THROW(h.setup(layer, {&a, &b}, {&y}), Error);
  }
  {
    ConcatLayer layer(layer_param(R"(name: "c" type: "Concat")"));
    EXPECT_THROW(h.setup(layer, {&a, &c}, {&y}), Error);
  }
  {
    ConcatLayer layer(layer_param(R"(name: "c" type: "Concat" concat_param { axis: 1 concat_dim: 1 })"));
    EXPECT_THROW(h.setup(layer, {&a, &a}, {&y}), Error);
  }
  {
    ConcatLayer layer(layer_param(R"(name: "c" type: "Concat" concat_param { axis: 3 })"));
    EXPECT_THROW(h.setup(layer, {&a, &a}, {&y}), Error);
  }
}

}  // namespace coco::testing
