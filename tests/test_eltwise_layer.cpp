#include "layers/eltwise_layer.h"

#include <algorithm>
#include <random>

#include "engine/common.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

TEST(EltwiseLayer, SumWithCoeff) {
  EltwiseLayer layer(layer_param(R"(name: "e" type: "Eltwise" eltwise_param { operation: SUM coeff: 1 coeff: 0.3 coeff: -2 })"));
  Blob a({2, 3, 5}), b({2, 3, 5}), c({2, 3, 5}), y;
  fill_uniform(a, -1, 1, 1);
  fill_uniform(b, -1, 1, 2);
  fill_uniform(c, -1, 1, 3);
  LayerHarness h;
  h.setup(layer, {&a, &b, &c}, {&y});
  layer.forward({&a, &b, &c}, {&y});
  ASSERT_EQ(y.shape(), a.shape());
  for (int64_t i = 0; i < y.count(); ++i)
    EXPECT_FLOAT_EQ(y.cdata()[i], a.cdata()[i] + 0.3f * b.cdata()[i] - 2 * c.cdata()[i]);
  GradientChecker().check(layer, {&a, &b, &c}, {&y});
}

TEST(EltwiseLayer, SumDefaultCoeffIsOne) {
  EltwiseLayer layer(layer_param(R"(name: "e" type: "Eltwise")"));
  Blob a({1, 7}), b({1, 7}), y;
  fill_uniform(a, -1, 1, 1);
  fill_uniform(b, -1, 1, 2);
  LayerHarness h;
  h.setup(layer, {&a, &b}, {&y});
  layer.forward({&a, &b}, {&y});
  for (int64_t i = 0; i < y.count(); ++i) EXPECT_FLOAT_EQ(y.cdata()[i], a.cdata()[i] + b.cdata()[i]);
  GradientChecker().check(layer, {&a, &b}, {&y});
}

TEST(EltwiseLayer, ProdStableAndFast) {
  for (const char* stable : {"true", "false"}) {
    EltwiseLayer layer(layer_param(std::string(R"(name: "e" type: "Eltwise" eltwise_param { operation: PROD stable_prod_grad: )") +
                                   stable + " }"));
    Blob a({2, 3, 3}), b({2, 3, 3}), c({2, 3, 3}), y;
    fill_uniform(a, 0.5, 1.5, 1);
    fill_uniform(b, -1.5, -0.5, 2);
    fill_uniform(c, 0.5, 1.5, 3);
    LayerHarness h;
    h.setup(layer, {&a, &b, &c}, {&y});
    layer.forward({&a, &b, &c}, {&y});
    for (int64_t i = 0; i < y.count(); ++i)
      EXPECT_FLOAT_EQ(y.cdata()[i], a.cdata()[i] * b.cdata()[i] * c.cdata()[i]);
    GradientChecker().check(layer, {&a, &b, &c}, {&y});
  }
}

TEST(EltwiseLayer, ProdStableGradientAtZero) {
  EltwiseLayer layer(layer_param(R"(name: "e" type: "Eltwise" eltwise_param { operation: PROD })"));
  Blob a({1, 2}), b({1, 2}), y;
  a.mutable_data()[0] = 0;
  a.mutable_data()[1] = 2;
  b.mutable_data()[0] = 3;
  b.mutable_data()[1] = 5;
  LayerHarness h;
  h.setup(layer, {&a, &b}, {&y});
  layer.forward({&a, &b}, {&y});
  y.mutable_diff()[0] = y.mutable_diff()[1] = 1;
  layer.backward({&y}, {true, true}, {&a, &b});
  EXPECT_EQ(a.cdiff()[0], 3.0f);  // top / a would be 0 / 0
  EXPECT_EQ(b.cdiff()[0], 0.0f);
  EXPECT_EQ(a.cdiff()[1], 5.0f);
}

// Bottoms take the levels 0, 0.2, 0.4 (+ noise below 0.05) in a random order per
// element, so no two are within the checker's step of each other (no kinks).
TEST(EltwiseLayer, MaxRoutesGradientToTheWinner) {
  EltwiseLayer layer(layer_param(R"(name: "e" type: "Eltwise" eltwise_param { operation: MAX })"));
  Blob a({2, 3, 5}), b({2, 3, 5}), c({2, 3, 5}), y;
  Blob* bs[3] = {&a, &b, &c};
  std::mt19937_64 g(4);
  std::uniform_real_distribution<float> noise(-0.05f, 0.05f);
  for (int64_t i = 0; i < a.count(); ++i) {
    int order[3] = {0, 1, 2};
    std::shuffle(order, order + 3, g);
    for (int k = 0; k < 3; ++k) bs[k]->mutable_data()[i] = 0.2f * order[k] + noise(g) + (i % 2 ? -1 : 1);
  }
  LayerHarness h;
  h.setup(layer, {&a, &b, &c}, {&y});
  layer.forward({&a, &b, &c}, {&y});
  for (int64_t i = 0; i < y.count(); ++i)
    EXPECT_EQ(y.cdata()[i], std::max({a.cdata()[i], b.cdata()[i], c.cdata()[i]}));
  GradientChecker().check(layer, {&a, &b, &c}, {&y});
  for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = 1;
  layer.backward({&y}, {true, true, true}, {&a, &b, &c});
  for (int64_t i = 0; i < y.count(); ++i) {
    EXPECT_EQ(a.cdiff()[i] + b.cdiff()[i] + c.cdiff()[i], 1.0f);
    for (Blob* k : bs) EXPECT_EQ(k->cdiff()[i], k->cdata()[i] == y.cdata()[i] ? 1.0f : 0.0f);
  }
}

TEST(EltwiseLayer, BadConfigAndShapes) {
  LayerHarness h;
  Blob a({2, 3}), b({2, 3}), c({3, 2}), y;
  {
    EltwiseLayer layer(layer_param(R"(name: "e" type: "Eltwise" eltwise_param { coeff: 1 })"));
    EXPECT_THROW(h.setup(layer, {&a, &b}, {&y}), Error);  // one coeff for two bottoms
  }
  {
    EltwiseLayer layer(layer_param(R"(name: "e" type: "Eltwise" eltwise_param { operation: PROD coeff: 1 coeff: 2 })"));
    EXPECT_THROW(h.setup(layer, {&a, &b}, {&y}), Error);
  }
  {
    EltwiseLayer layer(layer_param(R"(name: "e" type: "Eltwise")"));
    EXPECT_THROW(h.setup(layer, {&a, &c}, {&y}), Error);
  }
  {
    EltwiseLayer layer(layer_param(R"(name: "e" type: "Eltwise")"));
    EXPECT_THROW(h.setup(layer, {&a}, {&y}), Error);  // needs 2+
  }
}

}  // namespace coco::testing
