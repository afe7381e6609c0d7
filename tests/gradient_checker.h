// Finite-difference gradient checks for layers (the model: Caffe's GradientChecker).
//
// The objective is J = sum_t sum_i w_ti * top_t[i] with fixed pseudo-random weights
// w in [-1, 1] (a scalar loss top gets w = 1), accumulated in double. The analytic
// gradient comes from one backward with top diffs = w; the numeric one from central
// differences (J(x+h) - J(x-h)) / 2h per element. Layers compute in float32, so the
// step is Caffe's 1e-2 and an element passes when |analytic - numeric| <=
// threshold * max(|analytic|, |numeric|, 1).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "comm/communicator.h"
#include "engine/common.h"
#include "engine/layer.h"

namespace coco::testing {

// Owns what a layer needs outside a Net: the context and a size-1 communicator.
struct LayerHarness {
  LocalCommunicator comm;
  LayerContext ctx;
  Rng rng{1234};
  LayerHarness() { ctx.comm = &comm; }
  void setup(Layer& layer, const Blobs& bottom, const Blobs& top) { layer.setup(bottom, top, &ctx, rng); }
};

// Fills a blob's data with uniform values in [lo, hi) from a fixed seed.
inline void fill_uniform(Blob& b, float lo, float hi, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  float* p = b.mutable_data();
  for (int64_t i = 0; i < b.count(); ++i) p[i] = d(g);
}

struct GradCheckOptions {
  double step = 1e-2;
  double threshold = 1e-3;
  uint64_t seed = 1701;
  // Bottoms to check (empty: every bottom the layer can backpropagate to).
  std::vector<int> bottoms;
  bool check_params = true;
  // Elements within kink_range of kink (in the perturbed input) are skipped, as
  // the function is not differentiable there (ReLU at 0, max pooling ties).
  double kink = 0;
  double kink_range = -1;
};

class GradientChecker {
 public:
  explicit GradientChecker(GradCheckOptions o = {}) : o_(o) {}

  void check(Layer& layer, const Blobs& bottom, const Blobs& top) {
    std::vector<int> bottoms = o_.bottoms;
    if (bottoms.empty())
      for (int i = 0; i < static_cast<int>(bottom.size()); ++i)
        if (layer.can_backward_to(i)) bottoms.push_back(i);
    std::vector<bool> prop(bottom.size(), false);
    for (int b : bottoms) prop[b] = true;

    // Analytic gradients. Parameter diffs are cleared before the forward, as the
    // solver does: a fused head (CocoLoss) accumulates them during its forward.
    for (auto& p : layer.blobs()) p->diff().zero();
    layer.reshape(bottom, top);
    layer.forward(bottom, top);
    make_weights(top);
    set_top_diffs(top);
    for (auto* b : bottom) b->diff().zero();
    layer.backward(top, prop, bottom);

    struct Target { Blob* blob; std::string what; std::vector<float> analytic; };
    std::vector<Target> targets;
    for (int b : bottoms) targets.push_back({bottom[b], "bottom " + std::to_string(b), bottom[b]->diff().to_vector()});
    if (o_.check_params)
      for (size_t p = 0; p < layer.blobs().size(); ++p)
        targets.push_back({layer.blobs()[p].get(), "param " + std::to_string(p), layer.blobs()[p]->diff().to_vector()});

    int checked = 0;
    for (auto& t : targets) {
      float* x = t.blob->mutable_data();
      for (int64_t i = 0; i < t.blob->count(); ++i) {
        const float orig = x[i];
        if (o_.kink_range > 0 && std::fabs(orig - o_.kink) < o_.kink_range) continue;
        x[i] = static_cast<float>(orig + o_.step);
        const double jp = objective(layer, bottom, top);
        x[i] = static_cast<float>(orig - o_.step);
        const double jm = objective(layer, bottom, top);
        x[i] = orig;
        const double numeric = (jp - jm) / (2 * o_.step);
        const double analytic = t.analytic[i];
        const double scale = std::max({std::fabs(analytic), std::fabs(numeric), 1.0});
        EXPECT_NEAR(analytic, numeric, o_.threshold * scale)
            << layer.name() << " (" << layer.type() << ") " << t.what << " element " << i;
        ++checked;
      }
    }
    EXPECT_GT(checked, 0) << "gradient check of " << layer.name() << " checked nothing";
  }

 private:
  void make_weights(const Blobs& top) {
    std::mt19937_64 g(o_.seed);
    std::uniform_real_distribution<double> d(-1, 1);
    weights_.clear();
    for (auto* t : top) {
      std::vector<double> w(t->count());
      if (t->count() == 1)
        w[0] = 1.0;
      else
        for (auto& v : w) v = d(g);
      weights_.push_back(std::move(w));
    }
  }
  void set_top_diffs(const Blobs& top) {
    for (size_t t = 0; t < top.size(); ++t) {
      float* d = top[t]->mutable_diff();
      for (int64_t i = 0; i < top[t]->count(); ++i) d[i] = static_cast<float>(weights_[t][i]);
    }
  }
  double objective(Layer& layer, const Blobs& bottom, const Blobs& top) {
    layer.reshape(bottom, top);
    layer.forward(bottom, top);
    double j = 0;
    for (size_t t = 0; t < top.size(); ++t) {
      const float* y = top[t]->cdata();
      for (int64_t i = 0; i < top[t]->count(); ++i) j += weights_[t][i] * y[i];
    }
    return j;
  }

  GradCheckOptions o_;
  std::vector<std::vector<double>> weights_;
};

// Builds a LayerParameter from prototxt text (test convenience; throws on errors).
proto::LayerParameter layer_param(const std::string& text);

}  // namespace coco::testing
