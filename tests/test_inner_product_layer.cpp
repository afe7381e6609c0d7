#include "layers/inner_product_layer.h"

#include <string>
#include <vector>

#include "engine/common.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

namespace {

struct IpCase {
  Shape bottom;
  int axis;
  int64_t n;  // num_output
  bool transpose, bias;
  Shape top;
};

const std::vector<IpCase> kCases = {
    {{3, 4, 2, 3}, 1, 5, false, true, {3, 5}},      // flattens C, H, W
    {{3, 4, 2, 3}, 1, 5, true, true, {3, 5}},       // transposed weight
    {{2, 3, 5}, 2, 4, false, false, {2, 3, 4}},     // axis 2, no bias
    {{2, 3, 5}, -1, 3, true, false, {2, 3, 3}},     // negative axis
    {{1, 7}, 1, 6, false, true, {1, 6}},            // batch of 1
};

proto::LayerParameter ip_param(const IpCase& k) {
  auto p = layer_param(R"(name: "fc" type: "InnerProduct"
      inner_product_param { weight_filler { type: "gaussian" } bias_filler { type: "uniform" min: -1 } })");
  auto* ip = p.mutable_inner_product_param();
  ip->set_num_output(k.n);
  ip->set_axis(k.axis);
  ip->set_transpose(k.transpose);
  ip->set_bias_term(k.bias);
  return p;
}

}  // namespace

TEST(InnerProductLayer, ForwardMatchesDefinition) {
  for (size_t ci = 0; ci < kCases.size(); ++ci) {
    const IpCase& k = kCases[ci];
    SCOPED_TRACE("case " + std::to_string(ci));
    InnerProductLayer layer(ip_param(k));
    Blob x(k.bottom), y;
    fill_uniform(x, -1, 1, 9 + ci);
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
    ASSERT_EQ(y.shape(), k.top);
    const int64_t M = shape_count(k.top, 0, static_cast<int>(k.top.size()) - 1), K = x.count() / M;
    EXPECT_EQ(layer.blobs()[0]->shape(), k.transpose ? (Shape{K, k.n}) : (Shape{k.n, K}));
    ASSERT_EQ(layer.blobs().size(), k.bias ? 2u : 1u);
    layer.forward({&x}, {&y});
    const float* w = layer.blobs()[0]->cdata();
    for (int64_t i = 0; i < M; ++i)
      for (int64_t o = 0; o < k.n; ++o) {
        double s = k.bias ? layer.blobs()[1]->cdata()[o] : 0.0;
        for (int64_t j = 0; j < K; ++j)
          s += static_cast<double>(x.cdata()[i * K + j]) * (k.transpose ? w[j * k.n + o] : w[o * K + j]);
        EXPECT_NEAR(y.cdata()[i * k.n + o], s, 1e-5) << i << "," << o;
      }
  }
}

TEST(InnerProductLayer, GradientCheck) {
  for (size_t ci = 0; ci < kCases.size(); ++ci) {
    const IpCase& k = kCases[ci];
    SCOPED_TRACE("case " + std::to_string(ci));
    InnerProductLayer layer(ip_param(k));
    Blob x(k.bottom), y;
    fill_uniform(x, -1, 1, 19 + ci);
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
    GradientChecker().check(layer, {&x}, {&y});
  }
}

TEST(InnerProductLayer, BackwardAccumulatesParamsAndWritesBottom) {
  const IpCase& k = kCases[0];
  InnerProductLayer layer(ip_param(k));
  Blob x(k.bottom), y;
  fill_uniform(x, -1, 1, 2);
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  layer.forward({&x}, {&y});
  fill_uniform(y, -1, 1, 4);
  y.diff().copy_from(y.data());
  for (auto& b : layer.blobs()) b->diff().zero();
  layer.backward({&y}, {true}, {&x});
  const auto dx = x.diff().to_vector(), dw = layer.blobs()[0]->diff().to_vector(),
             db = layer.blobs()[1]->diff().to_vector();
  x.diff().fill(-9.f);
  layer.backward({&y}, {true}, {&x});
  for (size_t i = 0; i < dx.size(); ++i) EXPECT_FLOAT_EQ(x.cdiff()[i], dx[i]);
  for (size_t i = 0; i < dw.size(); ++i) EXPECT_FLOAT_EQ(layer.blobs()[0]->cdiff()[i], 2 * dw[i]);
  for (size_t i = 0; i < db.size(); ++i) EXPECT_FLOAT_EQ(layer.blobs()[1]->cdiff()[i], 2 * db[i]);
}

TEST(InnerProductLayer, BatchSizeMayChangeButNotInputWidth) {
  const IpCase& k = kCases[0];
  InnerProductLayer layer(ip_param(k));
  Blob x(k.bottom), y;
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  x.reshape({7, 4, 2, 3});
  layer.reshape({&x}, {&y});
  EXPECT_EQ(y.shape(), (Shape{7, 5}));
  x.reshape({7, 4, 3, 3});
  EXPECT_THROW(layer.reshape({&x}, {&y}), Error);
}

TEST(InnerProductLayer, RejectsBadConfigAndLoadedShapes) {
  auto try_setup = [](const std::string& ip, const Shape& shape) {
    InnerProductLayer layer(layer_param(R"(name: "fc" type: "InnerProduct" inner_product_param {)" + ip + "}"));
    Blob x(shape), y;
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
  };
  EXPECT_NO_THROW(try_setup("num_output: 3", Shape{2, 5}));
  EXPECT_THROW(try_setup("", Shape{2, 5}), Error);                       // no num_output
  EXPECT_THROW(try_setup("num_output: 3 axis: 2", Shape{2, 5}), Error);  // axis out of range
  EXPECT_THROW(try_setup("num_output: 3 axis: -3", Shape{2, 5}), Error);

  InnerProductLayer layer(layer_param(R"(name: "fc" type: "InnerProduct" inner_product_param { num_output: 3 })"));
  layer.blobs().push_back(std::make_shared<Blob>(Shape{5, 3}));  // the transposed layout
  layer.blobs().push_back(std::make_shared<Blob>(Shape{3}));
  Blob x({2, 5}), y;
  LayerHarness h;
  EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error);
}

TEST(InnerProductLayer, RejectsInPlace) {
  InnerProductLayer layer(layer_param(R"(name: "fc" type: "InnerProduct" inner_product_param { num_output: 3 })"));
  Blob x({2, 5});
  LayerHarness h;
  EXPECT_THROW(h.setup(layer, {&x}, {&x}), Error);
}

}  // namespace coco::testing
