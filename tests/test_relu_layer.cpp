#include "layers/relu_layer.h"

#include "tests/gradient_checker.h"

namespace coco::testing {

TEST(ReLULayer, ForwardMatchesDefinition) {
  auto p = layer_param(R"(name: "relu" type: "ReLU" relu_param { negative_slope: 0.25 })");
  ReLULayer layer(p);
  Blob x({2, 3, 4, 5}), y;
  fill_uniform(x, -1, 1, 7);
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  layer.forward({&x}, {&y});
  ASSERT_EQ(y.shape(), x.shape());
  for (int64_t i = 0; i < x.count(); ++i) {
    const float v = x.cdata()[i];
    EXPECT_FLOAT_EQ(y.cdata()[i], v > 0 ? v : 0.25f * v);
  }
}

TEST(ReLULayer, GradientCheck) {
  for (float slope : {0.0f, 0.1f}) {
    auto p = layer_param(R"(name: "relu" type: "ReLU")");
    p.mutable_relu_param()->set_negative_slope(slope);
    ReLULayer layer(p);
    Blob x({2, 3, 3, 4}), y;
    fill_uniform(x, -1, 1, 11);
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
    GradCheckOptions o;
    o.kink = 0;
    o.kink_range = 0.02;  // the step is 1e-2: stay clear of the kink at 0
    GradientChecker(o).check(layer, {&x}, {&y});
  }
}

TEST(ReLULayer, InPlaceEqualsOutOfPlace) {
  auto p = layer_param(R"(name: "relu" type: "ReLU" relu_param { negative_slope: 0.1 })");
  ReLULayer a(p), b(p);
  Blob x({3, 7}), y, z({3, 7});
  fill_uniform(x, -1, 1, 3);
  z.data().copy_from(x.data());
  LayerHarness h;
  h.setup(a, {&x}, {&y});
  h.setup(b, {&z}, {&z});
  a.forward({&x}, {&y});
  b.forward({&z}, {&z});
  fill_uniform(y, -1, 1, 5);  // data of y is irrelevant to backward except its sign
  a.forward({&x}, {&y});
  for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = z.mutable_diff()[i] = 0.5f + i;
  a.backward({&y}, {true}, {&x});
  b.backward({&z}, {true}, {&z});
  for (int64_t i = 0; i < y.count(); ++i) {
    EXPECT_EQ(y.cdata()[i], z.cdata()[i]);
    EXPECT_EQ(x.cdiff()[i], z.cdiff()[i]);
  }
}

}  // namespace coco::testing
