#include "layers/center_projection_layer.h"

#include <cmath>

#include "engine/common.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

namespace {
proto::LayerParameter cp_param(int k, float scale, bool bias) {
  auto p = layer_param(R"(name: "ip2" type: "CenterProjection"
    center_projection_param { weight_filler { type: "gaussian" std: 0.7 }
                              bias_filler { type: "uniform" min: -0.5 max: 0.5 } })");
  p.mutable_center_projection_param()->set_num_output(k);
  p.mutable_center_projection_param()->set_scale(scale);
  p.mutable_center_projection_param()->set_bias_term(bias);
  return p;
}
}  // namespace

TEST(CenterProjectionLayer, ForwardRenormalisesWeightsAndProjects) {
  for (bool bias : {false, true}) {
    CenterProjectionLayer layer(cp_param(5, 2.5f, bias));
    Blob x({3, 2, 1, 3}), y;  // D = 6
    fill_uniform(x, -1, 1, 7);
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
    ASSERT_EQ(layer.blobs().size(), bias ? 2u : 1u);
    ASSERT_EQ(layer.blobs()[0]->shape(), (Shape{5, 6}));
    const std::vector<float> w0 = layer.blobs()[0]->data().to_vector();
    layer.forward({&x}, {&y});
    ASSERT_EQ(y.shape(), (Shape{3, 5}));
    const float* w = layer.blobs()[0]->cdata();
    for (int j = 0; j < 5; ++j) {
      double n0 = 0, n1 = 0;
      for (int c = 0; c < 6; ++c) {
        n0 += double(w0[j * 6 + c]) * w0[j * 6 + c];
        n1 += double(w[j * 6 + c]) * w[j * 6 + c];
      }
      EXPECT_GT(std::fabs(std::sqrt(n0) - 1), 1e-2) << "the filler should not give unit rows already";
      EXPECT_NEAR(n1, 1.0, 1e-6) << "row " << j << " not rewritten as a unit vector";
      for (int c = 0; c < 6; ++c) EXPECT_NEAR(w[j * 6 + c], w0[j * 6 + c] / std::sqrt(n0 + 1e-12), 1e-6);
    }
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 5; ++j) {
        double n0 = 0, dot = 0;
        for (int c = 0; c < 6; ++c) n0 += double(w0[j * 6 + c]) * w0[j * 6 + c];
        for (int c = 0; c < 6; ++c) dot += x.cdata()[i * 6 + c] * (w0[j * 6 + c] / std::sqrt(n0));
        double want = 2.5 * dot + (bias ? layer.blobs()[1]->cdata()[j] : 0.0);
        EXPECT_NEAR(y.cdata()[i * 5 + j], want, 1e-5);
      }
  }
}

TEST(CenterProjectionLayer, GradientCheckBottomAndBias) {
  for (Shape s : {Shape{4, 3}, Shape{1, 7}, Shape{3, 2, 1, 2}}) {
    CenterProjectionLayer layer(cp_param(5, 3.0f, true));
    Blob x(s), y;
    fill_uniform(x, -1, 1, 11);
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
    GradCheckOptions o;
    o.check_params = false;  // the weight gets the seed's gradient (no Jacobian), checked below
    GradientChecker(o).check(layer, {&x}, {&y});

    // Bias: central differences of J = sum_ij w_ij * y_ij by hand (the checker
    // checks all parameters or none, and the weight's step is not a gradient).
    std::vector<float> wts(y.count());
    for (size_t i = 0; i < wts.size(); ++i) wts[i] = std::cos(0.7f * i);
    auto objective = [&] {
      layer.forward({&x}, {&y});
      double j = 0;
      for (int64_t i = 0; i < y.count(); ++i) j += wts[i] * y.cdata()[i];
      return j;
    };
    objective();
    for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = wts[i];
    Blob& b = *layer.blobs()[1];
    b.diff().zero();
    layer.blobs()[0]->diff().zero();
    layer.backward({&y}, {false}, {&x});
    for (int64_t j = 0; j < b.count(); ++j) {
      const float orig = b.cdata()[j];
      b.mutable_data()[j] = orig + 1e-2f;
      const double jp = objective();
      b.mutable_data()[j] = orig - 1e-2f;
      const double jm = objective();
      b.mutable_data()[j] = orig;
      EXPECT_NEAR(b.cdiff()[j], (jp - jm) / 2e-2, 1e-3 * std::max(1.0, std::fabs(double(b.cdiff()[j]))));
    }
  }
}

TEST(CenterProjectionLayer, WeightDiffIsSeedGradientAndAccumulates) {
  // weight diff += scale * dYᵀ x, with the unit rows treated as free weights.
  const int n = 3, k = 4, d = 5;
  const float scale = 1.75f;
  CenterProjectionLayer layer(cp_param(k, scale, false));
  Blob x({n, d}), y;
  fill_uniform(x, -1, 1, 5);
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  layer.forward({&x}, {&y});
  for (int i = 0; i < n * k; ++i) y.mutable_diff()[i] = 0.1f * i - 0.5f;
  Blob& w = *layer.blobs()[0];
  for (int i = 0; i < k * d; ++i) w.mutable_diff()[i] = 0.25f;  // accumulated onto
  layer.backward({&y}, {true}, {&x});
  for (int j = 0; j < k; ++j)
    for (int c = 0; c < d; ++c) {
      double want = 0;
      for (int i = 0; i < n; ++i) want += double(y.cdiff()[i * k + j]) * x.cdata()[i * d + c];
      EXPECT_NEAR(w.cdiff()[j * d + c], 0.25 + scale * want, 1e-5);
    }
  // bottom diff = scale * dY w (the unit w)
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < d; ++c) {
      double want = 0;
      for (int j = 0; j < k; ++j) want += double(y.cdiff()[i * k + j]) * w.cdata()[j * d + c];
      EXPECT_NEAR(x.cdiff()[i * d + c], scale * want, 1e-5);
    }
}

TEST(CenterProjectionLayer, BadConfigAndShapes) {
  LayerHarness h;
  {
    CenterProjectionLayer layer(cp_param(0, 1, false));
    Blob x({2, 3}), y;
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error);
  }
  {  // loaded weights of the wrong shape
    CenterProjectionLayer layer(cp_param(4, 1, false));
    layer.blobs().push_back(std::make_shared<Blob>(Shape{4, 2}));
    Blob x({2, 3}), y;
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error);
  }
  {  // bottom dimension changes after setup
    CenterProjectionLayer layer(cp_param(4, 1, false));
    Blob x({2, 3}), y;
    h.setup(layer, {&x}, {&y});
    x.reshape({2, 4});
    EXPECT_THROW(layer.reshape({&x}, {&y}), Error);
  }
}

}  // namespace coco::testing
