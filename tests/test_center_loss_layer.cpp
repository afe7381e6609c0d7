#include "layers/center_loss_layer.h"

#include <cmath>

#include "engine/common.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

namespace {
proto::LayerParameter cl_param(int k, const char* update) {
  auto p = layer_param(std::string(R"(name: "center_loss" type: "CenterLoss"
    center_loss_param { center_filler { type: "uniform" min: -1 max: 1 } center_update: )") +
                       update + " }");
  p.mutable_center_loss_param()->set_num_output(k);
  return p;
}
void set_labels(Blob& label, std::initializer_list<float> v) {
  int i = 0;
  for (float x : v) label.mutable_data()[i++] = x;
}
}  // namespace

TEST(CenterLossLayer, ForwardMatchesDefinition) {
  CenterLossLayer layer(cl_param(4, "SEED"));
  Blob x({5, 2, 3}), label({5}), loss;  // D = 6 flattened from axis 1
  fill_uniform(x, -1, 1, 7);
  set_labels(label, {3, 0, 3, 1, 0});
  LayerHarness h;
  h.setup(layer, {&x, &label}, {&loss});
  ASSERT_EQ(layer.blobs()[0]->shape(), (Shape{4, 6}));
  layer.forward({&x, &label}, {&loss});
  ASSERT_EQ(loss.shape(), (Shape{1}));
  const float* c = layer.blobs()[0]->cdata();
  double want = 0;
  for (int i = 0; i < 5; ++i) {
    const int y = static_cast<int>(label.cdata()[i]);
    for (int j = 0; j < 6; ++j) {
      const double v = double(x.cdata()[i * 6 + j]) - c[y * 6 + j];
      want += v * v;
    }
  }
  EXPECT_NEAR(loss.cdata()[0], want / (2 * 5), 1e-6);
}

TEST(CenterLossLayer, GradientCheckFeaturesBothModes) {
  for (const char* mode : {"SEED", "GRADIENT"}) {
    for (int n : {1, 5}) {
      CenterLossLayer layer(cl_param(3, mode));
      Blob x({n, 3, 1, 1}), label({n}), loss;
      fill_uniform(x, -1, 1, 11);
      for (int i = 0; i < n; ++i) label.mutable_data()[i] = static_cast<float>((i * 2) % 3);
      LayerHarness h;
      h.setup(layer, {&x, &label}, {&loss});
      GradCheckOptions o;
      o.check_params = false;
      GradientChecker(o).check(layer, {&x, &label}, {&loss});
    }
  }
}

TEST(CenterLossLayer, GradientCheckCentresInGradientMode) {
  CenterLossLayer layer(cl_param(4, "GRADIENT"));
  Blob x({7, 5}), label({7}), loss;  // class 2 absent: its centre gets zero gradient
  fill_uniform(x, -1, 1, 13);
  set_labels(label, {0, 3, 1, 0, 3, 3, 1});
  LayerHarness h;
  h.setup(layer, {&x, &label}, {&loss});
  GradientChecker().check(layer, {&x, &label}, {&loss});
}

TEST(CenterLossLayer, SeedCentreUpdateFormula) {
  // diff_c_j += sum_{i: y_i = j} (c_j - x_i) / (1 + n_j), independent of the loss weight.
  const int n = 6, k = 3, d = 4;
  for (float loss_weight : {1.0f, 0.003f}) {
    CenterLossLayer layer(cl_param(k, "SEED"));
    Blob x({n, d}), label({n}), loss;
    fill_uniform(x, -2, 2, 3);
    set_labels(label, {2, 0, 2, 2, 0, 0});  // class 1 absent
    LayerHarness h;
    h.setup(layer, {&x, &label}, {&loss});
    layer.forward({&x, &label}, {&loss});
    Blob& c = *layer.blobs()[0];
    for (int i = 0; i < k * d; ++i) c.mutable_diff()[i] = 0.5f;  // accumulated onto
    loss.mutable_diff()[0] = loss_weight;
    layer.backward({&loss}, {true, false}, {&x, &label});
    for (int j = 0; j < k; ++j) {
      int nj = 0;
      for (int i = 0; i < n; ++i) nj += static_cast<int>(label.cdata()[i]) == j;
      for (int col = 0; col < d; ++col) {
        double s = 0;
        for (int i = 0; i < n; ++i)
          if (static_cast<int>(label.cdata()[i]) == j) s += double(c.cdata()[j * d + col]) - x.cdata()[i * d + col];
        EXPECT_NEAR(c.cdiff()[j * d + col], 0.5 + s / (1 + nj), 1e-5) << "class " << j;
      }
    }
    // Bottom diff still carries the loss weight: (x_i - c_{y_i}) * w / N.
    for (int i = 0; i < n; ++i)
      for (int col = 0; col < d; ++col) {
        const int y = static_cast<int>(label.cdata()[i]);
        EXPECT_NEAR(x.cdiff()[i * d + col], (x.cdata()[i * d + col] - c.cdata()[y * d + col]) * loss_weight / n, 1e-6);
      }
  }
}

TEST(CenterLossLayer, GradientModeScalesByLossWeight) {
  CenterLossLayer layer(cl_param(2, "GRADIENT"));
  Blob x({3, 2}), label({3}), loss;
  fill_uniform(x, -1, 1, 21);
  set_labels(label, {1, 1, 0});
  LayerHarness h;
  h.setup(layer, {&x, &label}, {&loss});
  layer.forward({&x, &label}, {&loss});
  Blob& c = *layer.blobs()[0];
  c.diff().zero();
  loss.mutable_diff()[0] = 0.25f;
  layer.backward({&loss}, {true, false}, {&x, &label});
  for (int j = 0; j < 2; ++j)
    for (int col = 0; col < 2; ++col) {
      double s = 0;
      for (int i = 0; i < 3; ++i)
        if (static_cast<int>(label.cdata()[i]) == j) s += double(c.cdata()[j * 2 + col]) - x.cdata()[i * 2 + col];
      EXPECT_NEAR(c.cdiff()[j * 2 + col], 0.25 * s / 3, 1e-6);
    }
}

TEST(CenterLossLayer, BadConfigLabelsAndShapes) {
  LayerHarness h;
  {
    CenterLossLayer layer(cl_param(0, "SEED"));
    Blob x({2, 3}), label({2}), loss;
    EXPECT_THROW(h.setup(layer, {&x, &label}, {&loss}), Error);
  }
  {  // label count
    CenterLossLayer layer(cl_param(3, "SEED"));
    Blob x({2, 3}), label({3}), loss;
    EXPECT_THROW(h.setup(layer, {&x, &label}, {&loss}), Error);
  }
  {  // loaded centres of the wrong shape
    CenterLossLayer layer(cl_param(3, "SEED"));
    layer.blobs().push_back(std::make_shared<Blob>(Shape{3, 4}));
    Blob x({2, 3}), label({2}), loss;
    EXPECT_THROW(h.setup(layer, {&x, &label}, {&loss}), Error);
  }
  for (float bad : {3.0f, -1.0f, 0.5f}) {
    CenterLossLayer layer(cl_param(3, "SEED"));
    Blob x({2, 3}), label({2}), loss;
    set_labels(label, {0, bad});
    h.setup(layer, {&x, &label}, {&loss});
    try {
      layer.forward({&x, &label}, {&loss});
      ADD_FAILURE() << "label " << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("index 1"), std::string::npos) << e.what();
    }
  }
  CenterLossLayer layer(cl_param(3, "SEED"));
  EXPECT_TRUE(layer.is_loss());
  EXPECT_FALSE(layer.can_backward_to(1));
}

}  // namespace coco::testing
