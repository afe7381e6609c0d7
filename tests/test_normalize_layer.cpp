#include "layers/normalize_layer.h"

#include <cmath>

#include "engine/common.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

TEST(NormalizeLayer, ForwardMatchesDefinition) {
  auto p = layer_param(R"(name: "l2" type: "Normalize" normalize_param { coeff: 2.5 })");
  NormalizeLayer layer(p);
  Blob x({3, 2, 3, 5}), y;
  fill_uniform(x, -1, 1, 7);
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  layer.forward({&x}, {&y});
  ASSERT_EQ(y.shape(), x.shape());
  const int64_t d = 2 * 3 * 5;
  for (int64_t i = 0; i < 3; ++i) {
    double ss = 0;
    for (int64_t k = 0; k < d; ++k) ss += double(x.cdata()[i * d + k]) * x.cdata()[i * d + k];
    double out_ss = 0;
    for (int64_t k = 0; k < d; ++k) {
      const double want = 2.5 * x.cdata()[i * d + k] / std::sqrt(ss + 1e-12);
      EXPECT_NEAR(y.cdata()[i * d + k], want, 1e-6);
      out_ss += double(y.cdata()[i * d + k]) * y.cdata()[i * d + k];
    }
    EXPECT_NEAR(std::sqrt(out_ss), 2.5, 1e-5);  // every row has norm coeff
  }
}

TEST(NormalizeLayer, ZeroRowStaysFinite) {
  auto p = layer_param(R"(name: "l2" type: "Normalize")");
  NormalizeLayer layer(p);
  Blob x({2, 4}), y;
  x.data().zero();
  x.mutable_data()[4] = 3;
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  layer.forward({&x}, {&y});
  for (int k = 0; k < 4; ++k) EXPECT_EQ(y.cdata()[k], 0.0f);
  EXPECT_NEAR(y.cdata()[4], 1.0f, 1e-6);
  for (int i = 0; i < 8; ++i) y.mutable_diff()[i] = 1;
  layer.backward({&y}, {true}, {&x});
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(std::isfinite(x.cdiff()[i]));
}

TEST(NormalizeLayer, GradientCheck) {
  for (float coeff : {1.0f, 3.0f}) {
    for (Shape s : {Shape{4, 3, 2, 1}, Shape{1, 7}, Shape{3, 5}}) {
      auto p = layer_param(R"(name: "l2" type: "Normalize")");
      p.mutable_normalize_param()->set_coeff(coeff);
      NormalizeLayer layer(p);
      Blob x(s), y;
      fill_uniform(x, -1, 1, 11);
      LayerHarness h;
      h.setup(layer, {&x}, {&y});
      GradientChecker().check(layer, {&x}, {&y});
    }
  }
}

TEST(NormalizeLayer, BackwardMatchesExactFormula) {
  // dx = coeff/n (g - x̂ (x̂.g)), written out from the definition in double.
  auto p = layer_param(R"(name: "l2" type: "Normalize" normalize_param { coeff: 4 })");
  NormalizeLayer layer(p);
  Blob x({2, 6}), y;
  fill_uniform(x, -2, 2, 3);
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  layer.forward({&x}, {&y});
  for (int i = 0; i < 12; ++i) y.mutable_diff()[i] = std::sin(1.0f + i);
  layer.backward({&y}, {true}, {&x});
  for (int i = 0; i < 2; ++i) {
    double ss = 0, dot = 0;
    for (int k = 0; k < 6; ++k) ss += double(x.cdata()[i * 6 + k]) * x.cdata()[i * 6 + k];
    const double n = std::sqrt(ss + 1e-12);
    for (int k = 0; k < 6; ++k) dot += x.cdata()[i * 6 + k] / n * std::sin(1.0 + i * 6 + k);
    for (int k = 0; k < 6; ++k) {
      const double want = 4 / n * (std::sin(1.0 + i * 6 + k) - x.cdata()[i * 6 + k] / n * dot);
      EXPECT_NEAR(x.cdiff()[i * 6 + k], want, 1e-5);
    }
  }
}

TEST(NormalizeLayer, InPlaceEqualsOutOfPlace) {
  auto p = layer_param(R"(name: "l2" type: "Normalize" normalize_param { coeff: 1.5 })");
  NormalizeLayer a(p), b(p);
  Blob x({3, 7}), y, z({3, 7});
  fill_uniform(x, -1, 1, 3);
  z.data().copy_from(x.data());
  LayerHarness h;
  h.setup(a, {&x}, {&y});
  h.setup(b, {&z}, {&z});
  a.forward({&x}, {&y});
  b.forward({&z}, {&z});
  for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = z.mutable_diff()[i] = 0.25f * i - 2;
  a.backward({&y}, {true}, {&x});
  b.backward({&z}, {true}, {&z});
  for (int64_t i = 0; i < y.count(); ++i) {
    EXPECT_EQ(y.cdata()[i], z.cdata()[i]);
    EXPECT_NEAR(x.cdiff()[i], z.cdiff()[i], 1e-6);
  }
}

TEST(NormalizeLayer, BadConfigAndShape) {
  {
    auto p = layer_param(R"(name: "l2" type: "Normalize" normalize_param { coeff: 0 })");
    NormalizeLayer layer(p);
    Blob x({2, 3}), y;
    LayerHarness h;
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error);
  }
  {
    auto p = layer_param(R"(name: "l2" type: "Normalize")");
    NormalizeLayer layer(p);
    Blob x({5}), y;
    LayerHarness h;
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error);
  }
}

}  // namespace coco::testing
