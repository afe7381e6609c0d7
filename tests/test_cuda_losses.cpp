// CPU-CUDA parity of the normalisation, projection, metric and loss layers:
// Normalize, CenterProjection, Accuracy, SoftmaxWithLoss, CenterLoss.
//
// The CPU path is the oracle (tests/cuda_parity.h). Beyond the harness: in-place
// Normalize, loss weights other than 1, centre diffs accumulated onto (+=), centres
// trained for several steps, bad labels (NaN on the device where the CPU throws),
// and bit-identical repeats in debug (deterministic) mode. Every test skips without
// a CUDA device.
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/cuda_math.h"
#include "engine/cuda_runtime.h"
#include "engine/math.h"
#include "tests/cuda_parity.h"

namespace coco::testing {

namespace {

using detail_parity::expect_close;

// The same layer on the CPU and on the device, with the same bottoms and (the CPU
// copy's) parameters, for the checks the harness does not make.
struct LayerPair {
  LocalCommunicator comm;
  LayerContext ctx_cpu, ctx_gpu;
  Rng rng_cpu{99}, rng_gpu{99};
  std::unique_ptr<Layer> cpu, gpu;
  std::vector<std::unique_ptr<Blob>> bc, bg, tc, tg;
  Blobs bcp, bgp, tcp, tgp;

  // `bottoms`: CPU blobs with their values; `tops`: how many tops.
  LayerPair(const std::string& text, const std::vector<const Blob*>& bottoms, int tops, bool in_place = false) {
    const proto::LayerParameter p = layer_param(text);
    cpu = layer_registry().create(p);
    gpu = layer_registry().create(p);
    ctx_cpu.comm = ctx_gpu.comm = &comm;
    for (const Blob* b : bottoms) {
      bc.push_back(std::make_unique<Blob>(b->shape()));
      bc.back()->data().copy_from(b->data());
      bg.push_back(std::make_unique<Blob>(b->shape(), Device::kCUDA));
      bg.back()->data().copy_from(b->data());
      bcp.push_back(bc.back().get());
      bgp.push_back(bg.back().get());
    }
    for (int t = 0; t < tops; ++t) {
      if (in_place) {
        tc.push_back(nullptr);
        tg.push_back(nullptr);
        tcp.push_back(bcp[t]);
        tgp.push_back(bgp[t]);
        continue;
      }
      tc.push_back(std::make_unique<Blob>());
      tg.push_back(std::make_unique<Blob>(Shape{}, Device::kCUDA));
      tcp.push_back(tc.back().get());
      tgp.push_back(tg.back().get());
    }
    cpu->setup(bcp, tcp, &ctx_cpu, rng_cpu);
    for (auto& b : cpu->blobs()) {
      auto copy = std::make_shared<Blob>(b->shape(), Device::kCUDA);
      copy->data().copy_from(b->data());
      gpu->blobs().push_back(copy);
    }
    gpu->setup(bgp, tgp, &ctx_gpu, rng_gpu);
  }

  void forward() {
    cpu->reshape(bcp, tcp);
    gpu->reshape(bgp, tgp);
    cpu->forward(bcp, tcp);
    gpu->forward(bgp, tgp);
    cuda::synchronize("pair forward");
  }
  // Top 0's diff is `top_diff` everywhere on both copies.
  void backward(float top_diff, const std::vector<bool>& down) {
    tcp[0]->diff().fill(top_diff);
    tgp[0]->diff().copy_from(tcp[0]->diff());
    cpu->backward(tcp, down, bcp);
    gpu->backward(tgp, down, bgp);
    cuda::synchronize("pair backward");
  }
};

ParityOptions tol(double rtol, double atol) {
  ParityOptions o;
  o.rtol = rtol;
  o.atol = atol;
  return o;
}

std::vector<float> host(const Tensor& t) {
  Tensor h;
  h.copy_from(t);
  return h.to_vector();
}

void expect_bitwise_equal(const std::string& what, const Tensor& a, const Tensor& b) {
  const auto x = host(a), y = host(b);
  ASSERT_EQ(x.size(), y.size()) << what;
  EXPECT_EQ(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)), 0) << what << " differs between two runs";
}

void fill_labels(Blob& b, int classes, uint64_t seed) {
  std::mt19937_64 g(seed);
  for (int64_t i = 0; i < b.count(); ++i) b.mutable_data()[i] = static_cast<float>(g() % classes);
}

}  // namespace

// ---------------------------------------------------------------- Normalize

// Tolerance: each row's sum of squares (forward) and x̂·g (backward) is accumulated in
// double on both sides, only in a different order (a CUB tree against a loop):
// ~1e-16 relative, so the float results differ by at most an ulp or two (rtol 1e-5);
// atol 1e-6 covers elements of the backward where g - x̂(x̂·g) cancels.
TEST(CudaNormalize, Parity) {
  COCO_REQUIRE_CUDA();
  // Odd sizes, a batch of 1, D of 1 and D above the block size (256).
  for (const char* coeff : {"1", "2.5", "-0.5"})
    for (Shape s : {Shape{1, 1}, Shape{1, 7}, Shape{4, 3, 2, 1}, Shape{5, 300}, Shape{3, 1031}, Shape{65, 3}}) {
      SCOPED_TRACE(shape_str(s) + " coeff " + coeff);
      expect_cuda_parity(std::string(R"(name: "l2" type: "Normalize" normalize_param { coeff: )") + coeff + " }",
                         {{s, 0, -2, 2}}, tol(1e-5, 1e-6));
    }
}

// In place (top = bottom, as nets use it): the same values as the CPU layer out of place.
TEST(CudaNormalize, InPlaceMatchesCpu) {
  COCO_REQUIRE_CUDA();
  for (Shape s : {Shape{1, 5}, Shape{6, 257}}) {
    Blob x(s);
    fill_uniform(x, -1, 1, 3);
    const std::string text = R"(name: "l2" type: "Normalize" normalize_param { coeff: 3 })";
    LayerPair out(text, {&x}, 1);       // CPU reference, out of place
    LayerPair in(text, {&x}, 1, true);  // in place on both
    out.forward();
    in.forward();
    expect_close("in-place top", out.tc[0]->data(), in.bg[0]->data(), tol(1e-5, 1e-6));
    // Backward in place: the top diff is the bottom diff.
    std::mt19937_64 g(5);
    std::uniform_real_distribution<float> d(-1, 1);
    Tensor gd(s);
    for (int64_t i = 0; i < gd.count(); ++i) gd.at(i) = d(g);
    out.tc[0]->diff().copy_from(gd);
    out.cpu->backward(out.tcp, {true}, out.bcp);
    in.bg[0]->diff().copy_from(gd);
    in.gpu->backward(in.tgp, {true}, in.bgp);
    cuda::synchronize("in-place backward");
    expect_close("in-place bottom diff", out.bc[0]->diff(), in.bg[0]->diff(), tol(1e-5, 1e-6));
  }
}

// A zero row: the norm is sqrt(eps), the output 0 and the gradient finite, as on the CPU.
TEST(CudaNormalize, ZeroRow) {
  COCO_REQUIRE_CUDA();
  Blob x({2, 4});
  x.data().zero();
  x.mutable_data()[5] = 3;
  LayerPair p(R"(name: "l2" type: "Normalize")", {&x}, 1);
  p.forward();
  expect_close("top", p.tc[0]->data(), p.tg[0]->data(), tol(1e-6, 0));
  p.backward(1.f, {true});
  expect_close("bottom diff", p.bc[0]->diff(), p.bg[0]->diff(), tol(1e-5, 1e-6));
}

// ---------------------------------------------------------------- CenterProjection

// Tolerance: the weight renormalisation sums in double on both sides (exact to an
// ulp); the projection and both gradients are float32 GEMMs, cuBLAS against
// OpenBLAS, whose summation orders differ: the error grows like sqrt(len)·eps·Σ|terms|
// with len up to 300 and Σ|terms| up to ~30 (scale 3, |x| <= 1, unit weights), a few
// 1e-5 -- hence atol 2e-4, rtol 1e-4.
TEST(CudaCenterProjection, Parity) {
  COCO_REQUIRE_CUDA();
  struct Case { Shape x; int k; bool bias; };
  for (const Case& c : {Case{{1, 5}, 3, false}, Case{{1, 5}, 3, true}, Case{{4, 3}, 5, true},
                        Case{{7, 2, 3, 5}, 13, false}, Case{{33, 300}, 17, true}, Case{{2, 1}, 1, true}}) {
    SCOPED_TRACE(shape_str(c.x) + " K " + std::to_string(c.k) + (c.bias ? " bias" : ""));
    const std::string text = std::string(R"(name: "ip" type: "CenterProjection" center_projection_param {
        weight_filler { type: "gaussian" std: 0.7 } bias_filler { type: "uniform" min: -0.5 max: 0.5 }
        scale: 3 num_output: )") + std::to_string(c.k) + (c.bias ? " bias_term: true }" : " }");
    ParityOptions o = tol(1e-4, 2e-4);
    o.repeats = 2;  // the second forward renormalises rows that are already unit
    expect_cuda_parity(text, {{c.x}}, o);
  }
}

// ---------------------------------------------------------------- Accuracy

// Tolerance 0: the counts are integers and the one division is the same float
// division on both sides.
TEST(CudaAccuracy, Parity) {
  COCO_REQUIRE_CUDA();
  struct Case { std::string param; Shape scores; Shape labels; int classes; int tops; };
  const std::vector<Case> cases = {
      {"", {1, 5}, {1}, 5, 1},
      {"", {17, 10}, {17}, 10, 2},
      {"accuracy_param { top_k: 3 }", {33, 7}, {33}, 7, 2},
      {"accuracy_param { top_k: 2 ignore_label: 1 }", {40, 4}, {40}, 4, 2},
      {"accuracy_param { ignore_label: 0 }", {9, 1}, {9}, 1, 2},  // everything ignored: 0
      {"", {3, 1000}, {3}, 1000, 1},                                // C above a warp
      {"accuracy_param { top_k: 5 }", {5, 1000}, {5}, 1000, 2},
      {"", {4, 6, 3}, {4, 3}, 6, 2},                                // spatial: inner 3
      {"accuracy_param { axis: 2 }", {3, 4, 5}, {3, 4}, 5, 2},      // classes last
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.param + " " + shape_str(c.scores));
    std::string text = R"(name: "acc" type: "Accuracy" bottom: "s" bottom: "l" top: "a" )";
    if (c.tops > 1) text += R"(top: "per_class" )";
    ParityOptions o = tol(0, 0);
    o.backward = false;
    // Labels drawn from [0, classes): with ignore_label in range some are ignored.
    expect_cuda_parity(text + c.param, {{c.scores, 0, -1, 1}, {c.labels, c.classes}}, o);
  }
}

// Caffe's ties on the device: the CPU test's table.
TEST(CudaAccuracy, Ties) {
  COCO_REQUIRE_CUDA();
  Blob s({5, 3}), l({5});
  const float scores[15] = {0.1f, 0.7f, 0.2f, 0.5f, 0.5f, 0.0f, 0.6f, 0.3f, 0.1f, 0.2f, 0.5f, 0.3f, 0.4f, 0.4f, 0.4f};
  const float labels[5] = {1, 0, 2, 2, 2};
  std::copy(scores, scores + 15, s.mutable_data());
  std::copy(labels, labels + 5, l.mutable_data());
  for (int k : {1, 2}) {
    LayerPair p(R"(name: "acc" type: "Accuracy" accuracy_param { top_k: )" + std::to_string(k) + " }", {&s, &l}, 1);
    p.forward();
    EXPECT_EQ(host(p.tg[0]->data())[0], k == 1 ? 3.0f / 5 : 4.0f / 5);
    expect_close("accuracy", p.tc[0]->data(), p.tg[0]->data(), tol(0, 0));
  }
}

// A label outside [0, C): the CPU path throws; the device writes NaN.
TEST(CudaAccuracy, BadLabelGivesNaN) {
  COCO_REQUIRE_CUDA();
  Blob s({3, 4}), l({3});
  fill_uniform(s, -1, 1, 1);
  for (float bad : {4.0f, -1.0f, 1.5f}) {
    l.mutable_data()[0] = 0;
    l.mutable_data()[1] = bad;
    l.mutable_data()[2] = 3;
    LayerPair p(R"(name: "acc" type: "Accuracy" top: "a" top: "c")", {&s, &l}, 2);
    p.gpu->reshape(p.bgp, p.tgp);
    p.gpu->forward(p.bgp, p.tgp);
    cuda::synchronize("accuracy");
    EXPECT_TRUE(std::isnan(host(p.tg[0]->data())[0])) << "label " << bad;
    EXPECT_THROW(p.cpu->forward(p.bcp, p.tcp), Error);
  }
}

// ---------------------------------------------------------------- SoftmaxWithLoss

// Tolerance: CUDA's expf is within 2 ulp, glibc's within 1, so probabilities differ by
// a few 1e-7 relative; the sums of exponentials and the loss are in double on both
// sides (different order: ~1e-16). rtol 1e-5, and atol 1e-6 for gradients of tiny
// probabilities (w·p with p near 0 against w·(p - 1)).
TEST(CudaSoftmaxWithLoss, ParityAllNormalizations) {
  COCO_REQUIRE_CUDA();
  const std::vector<std::string> params = {
      "",
      "loss_param { normalization: FULL }",
      "loss_param { normalization: BATCH_SIZE }",
      "loss_param { normalization: NONE }",
      "loss_param { ignore_label: 1 }",
      "loss_param { ignore_label: 1 normalization: VALID }",
      "loss_param { ignore_label: 0 normalization: FULL }",
      "loss_param { ignore_label: 2 normalization: BATCH_SIZE }",
      "loss_param { ignore_label: 1 normalization: NONE }",
      "loss_param { ignore_label: 1 normalize: false }",  // legacy: BATCH_SIZE
      "loss_param { ignore_label: 1 normalize: true }",   // legacy: VALID
  };
  struct Case { Shape scores; Shape labels; int classes; };
  const std::vector<Case> cases = {
      {{1, 7}, {1}, 7},          {{5, 7}, {5}, 7},          {{2, 3, 2, 3}, {2, 6}, 3},  // spatial, inner 6
      {{3, 1000}, {3}, 1000},    {{65, 10}, {65}, 10},      {{4, 1}, {4}, 1},           // one class: loss 0
  };
  for (const auto& param : params)
    for (const auto& c : cases) {
      SCOPED_TRACE(param + " " + shape_str(c.scores));
      const std::string text = R"(name: "loss" type: "SoftmaxWithLoss" bottom: "z" bottom: "y" top: "l" )";
      expect_cuda_parity(text + param, {{c.scores, 0, -4, 4}, {c.labels, c.classes}}, tol(1e-5, 1e-6));
      // With the probabilities as a second top (its diff is ignored by backward).
      expect_cuda_parity(text + R"(top: "prob" )" + param, {{c.scores, 0, -4, 4}, {c.labels, c.classes}},
                         tol(1e-5, 1e-6));
    }
}

// Every label ignored: loss 0 (normaliser clamped to 1), zero gradient.
TEST(CudaSoftmaxWithLoss, AllIgnored) {
  COCO_REQUIRE_CUDA();
  for (const char* norm : {"VALID", "FULL", "BATCH_SIZE", "NONE"})
    expect_cuda_parity(std::string(R"(name: "loss" type: "SoftmaxWithLoss" loss_param { ignore_label: 0 normalization: )") +
                           norm + " }",
                       {{{3, 1}}, {{3}, 1}}, tol(0, 0));
}

// The loss weight (top diff) scales the gradient, read from the device.
TEST(CudaSoftmaxWithLoss, LossWeight) {
  COCO_REQUIRE_CUDA();
  Blob z({6, 5}), y({6});
  fill_uniform(z, -3, 3, 2);
  fill_labels(y, 5, 4);
  LayerPair p(R"(name: "loss" type: "SoftmaxWithLoss" loss_param { ignore_label: 3 })", {&z, &y}, 1);
  p.forward();
  for (float w : {2.5f, 0.003f, -1.0f}) {
    p.backward(w, {true, false});
    expect_close("bottom diff, weight " + std::to_string(w), p.bc[0]->diff(), p.bg[0]->diff(), tol(1e-5, 1e-6));
  }
}

// Large scores: the row maximum is subtracted on the device too.
TEST(CudaSoftmaxWithLoss, LargeScores) {
  COCO_REQUIRE_CUDA();
  Blob z({2, 3}), y({2});
  const float v[6] = {1000, 1001, 999, -1000, -1002, -1001};
  std::copy(v, v + 6, z.mutable_data());
  y.mutable_data()[0] = 2;
  y.mutable_data()[1] = 0;
  LayerPair p(R"(name: "loss" type: "SoftmaxWithLoss")", {&z, &y}, 1);
  p.forward();
  expect_close("loss", p.tc[0]->data(), p.tg[0]->data(), tol(1e-5, 1e-6));
  p.backward(1.f, {true, false});
  expect_close("bottom diff", p.bc[0]->diff(), p.bg[0]->diff(), tol(1e-5, 1e-6));
}

// A label the CPU path rejects: NaN loss on the device, zero gradient at that
// position, the other positions' gradients as on the CPU with that position ignored.
TEST(CudaSoftmaxWithLoss, BadLabelGivesNaN) {
  COCO_REQUIRE_CUDA();
  for (float bad : {4.0f, -1.0f, 1.5f}) {
    Blob z({3, 4}), y({3});
    fill_uniform(z, -1, 1, 8);
    y.mutable_data()[0] = 1;
    y.mutable_data()[1] = bad;
    y.mutable_data()[2] = 3;
    LayerPair p(R"(name: "loss" type: "SoftmaxWithLoss")", {&z, &y}, 1);
    p.gpu->reshape(p.bgp, p.tgp);
    p.gpu->forward(p.bgp, p.tgp);
    p.tg[0]->diff().fill(1.f);
    p.gpu->backward(p.tgp, {true, false}, p.bgp);
    cuda::synchronize("bad label");
    EXPECT_TRUE(std::isnan(host(p.tg[0]->data())[0])) << "label " << bad;
    const auto dz = host(p.bg[0]->diff());
    for (int k = 0; k < 4; ++k) EXPECT_EQ(dz[4 + k], 0.0f) << "label " << bad;
    for (float g : dz) EXPECT_TRUE(std::isfinite(g));
    EXPECT_THROW(p.cpu->forward(p.bcp, p.tcp), Error);
  }
}

// ---------------------------------------------------------------- CenterLoss

namespace {
std::string center_loss_text(int k, const char* update, int axis = 1) {
  return std::string(R"(name: "center_loss" type: "CenterLoss" bottom: "x" bottom: "y" top: "l"
      center_loss_param { center_filler { type: "uniform" min: -1 max: 1 } num_output: )") +
         std::to_string(k) + " axis: " + std::to_string(axis) + " center_update: " + update + " }";
}
}  // namespace

// Tolerance: the distances and the bottom diff are the same float operations on both
// sides (exact); the centre sums run in double in the same batch order (exact up to
// FMA contraction in double); only the loss total is summed in a different order
// (double, ~1e-16) before its rounding to float. rtol 1e-5 / atol 1e-6 leave room
// for an ulp of FMA-contracted rounding.
TEST(CudaCenterLoss, ParityBothUpdates) {
  COCO_REQUIRE_CUDA();
  struct Case { Shape x; Shape labels; int k; int axis; };
  const std::vector<Case> cases = {
      {{1, 3}, {1}, 3, 1},            // a batch of 1
      {{5, 2, 3}, {5}, 4, 1},         // flattened from axis 1
      {{64, 2}, {64}, 10, 1},         // MNIST-like: D 2, many samples per class
      {{33, 300}, {33}, 7, 1},        // D above the block size (128)
      {{40, 5}, {40}, 200, 1},        // most classes absent
      {{2, 3, 4}, {2, 3}, 5, 2},      // axis 2: six samples of D 4
  };
  for (const char* update : {"SEED", "GRADIENT"})
    for (const auto& c : cases) {
      SCOPED_TRACE(std::string(update) + " " + shape_str(c.x) + " K " + std::to_string(c.k));
      ParityOptions o = tol(1e-5, 1e-6);
      o.repeats = 2;
      expect_cuda_parity(center_loss_text(c.k, update, c.axis), {{c.x, 0, -2, 2}, {c.labels, c.k}}, o);
    }
}

// The centre diff is accumulated onto (+=), and the loss weight scales the bottom
// diff (and, in GRADIENT mode only, the centre diff), read from the device.
TEST(CudaCenterLoss, AccumulatesAndLossWeight) {
  COCO_REQUIRE_CUDA();
  for (const char* update : {"SEED", "GRADIENT"})
    for (float w : {1.0f, 0.003f}) {
      Blob x({9, 6}), y({9});
      fill_uniform(x, -2, 2, 3);
      fill_labels(y, 4, 5);
      LayerPair p(center_loss_text(4, update), {&x, &y}, 1);
      p.forward();
      p.cpu->blobs()[0]->diff().fill(0.5f);
      p.gpu->blobs()[0]->diff().fill(0.5f);
      p.backward(w, {true, false});
      const std::string what = std::string(update) + " weight " + std::to_string(w);
      expect_close("centre diff " + what, p.cpu->blobs()[0]->diff(), p.gpu->blobs()[0]->diff(), tol(1e-5, 1e-6));
      expect_close("bottom diff " + what, p.bc[0]->diff(), p.bg[0]->diff(), tol(1e-5, 1e-6));
      // propagate_down false for the features: the centres still move.
      p.cpu->blobs()[0]->diff().zero();
      p.gpu->blobs()[0]->diff().zero();
      p.backward(w, {false, false});
      expect_close("centre diff only " + what, p.cpu->blobs()[0]->diff(), p.gpu->blobs()[0]->diff(),
                   tol(1e-5, 1e-6));
    }
}

// Training the centres: several steps of forward, backward and the SGD step the
// solver takes (c -= lr * diff, lr = the centre rate alpha) give the same centres.
TEST(CudaCenterLoss, CentresFollowCpuOverSteps) {
  COCO_REQUIRE_CUDA();
  for (const char* update : {"SEED", "GRADIENT"}) {
    Blob x({24, 8}), y({24});
    fill_uniform(x, -2, 2, 6);
    fill_labels(y, 5, 7);
    LayerPair p(center_loss_text(5, update), {&x, &y}, 1);
    const float lr = 0.5f;
    for (int step = 0; step < 5; ++step) {
      p.forward();
      expect_close(std::string(update) + " loss, step " + std::to_string(step), p.tc[0]->data(), p.tg[0]->data(),
                   tol(1e-5, 1e-6));
      p.cpu->blobs()[0]->diff().zero();
      p.gpu->blobs()[0]->diff().zero();
      p.backward(1.f, {true, false});
      Blob& cc = *p.cpu->blobs()[0];
      Blob& cg = *p.gpu->blobs()[0];
      cpu_axpy(cc.count(), -lr, cc.cdiff(), cc.mutable_data());
      cuda_axpy(cg.count(), -lr, cg.cdiff(), cg.mutable_data(), cuda::stream());
      cuda::synchronize("centre step");
      // Each step's error stays an ulp or two of the centres (|c| ~ 1).
      expect_close(std::string(update) + " centres, step " + std::to_string(step), cc.data(), cg.data(),
                   tol(1e-5, 1e-6));
    }
  }
}

// A label outside [0, K): NaN loss on the device (the CPU path throws); that sample
// gets zero gradient and moves no centre.
TEST(CudaCenterLoss, BadLabelGivesNaN) {
  COCO_REQUIRE_CUDA();
  for (float bad : {3.0f, -1.0f, 0.5f}) {
    Blob x({3, 2}), y({3});
    fill_uniform(x, -1, 1, 2);
    y.mutable_data()[0] = 0;
    y.mutable_data()[1] = bad;
    y.mutable_data()[2] = 2;
    LayerPair p(center_loss_text(3, "SEED"), {&x, &y}, 1);
    p.gpu->reshape(p.bgp, p.tgp);
    p.gpu->forward(p.bgp, p.tgp);
    p.tg[0]->diff().fill(1.f);
    p.gpu->blobs()[0]->diff().zero();
    p.gpu->backward(p.tgp, {true, false}, p.bgp);
    cuda::synchronize("bad label");
    EXPECT_TRUE(std::isnan(host(p.tg[0]->data())[0])) << "label " << bad;
    const auto dx = host(p.bg[0]->diff());
    EXPECT_EQ(dx[2], 0.0f);
    EXPECT_EQ(dx[3], 0.0f);
    const auto dc = host(p.gpu->blobs()[0]->diff());
    EXPECT_EQ(dc[2], 0.0f);  // class 1: only the bad sample could have reached it
    EXPECT_EQ(dc[3], 0.0f);
    for (float g : dc) EXPECT_TRUE(std::isfinite(g));
    EXPECT_THROW(p.cpu->forward(p.bcp, p.tcp), Error);
  }
}

// ---------------------------------------------------------------- debug mode

// Deterministic mode: two runs of forward and backward are bit-identical (every
// reduction of these layers has a fixed order; Accuracy's atomics are on integers).
TEST(CudaLosses, DeterministicRepeats) {
  COCO_REQUIRE_CUDA();
  const bool was = cuda::deterministic();
  cuda::set_deterministic(true);
  Blob z({300, 37}), y({300}), x({300, 64});
  fill_uniform(z, -3, 3, 1);
  fill_uniform(x, -1, 1, 2);
  fill_labels(y, 37, 3);
  struct Case { std::string text; const Blob* bottom; bool loss; };
  const std::vector<Case> cases = {
      {R"(name: "loss" type: "SoftmaxWithLoss" loss_param { ignore_label: 5 })", &z, true},
      {center_loss_text(37, "SEED"), &x, true},
      {center_loss_text(37, "GRADIENT"), &x, true},
      {R"(name: "acc" type: "Accuracy" accuracy_param { top_k: 3 } top: "a" top: "c")", &z, false},
      {R"(name: "l2" type: "Normalize")", &x, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    std::vector<const Blob*> bottoms{c.bottom};
    if (c.text.find("Normalize") == std::string::npos) bottoms.push_back(&y);
    LayerPair a(c.text, bottoms, c.text.find("Accuracy") != std::string::npos ? 2 : 1);
    LayerPair b(c.text, bottoms, c.text.find("Accuracy") != std::string::npos ? 2 : 1);
    a.forward();
    b.forward();
    for (size_t t = 0; t < a.tg.size(); ++t) expect_bitwise_equal("top", a.tg[t]->data(), b.tg[t]->data());
    if (c.text.find("Accuracy") != std::string::npos) continue;
    std::vector<bool> down(bottoms.size(), false);
    down[0] = true;
    a.backward(c.loss ? 1.f : 0.25f, down);
    b.backward(c.loss ? 1.f : 0.25f, down);
    expect_bitwise_equal("bottom diff", a.bg[0]->diff(), b.bg[0]->diff());
    for (size_t k = 0; k < a.gpu->blobs().size(); ++k)
      expect_bitwise_equal("param diff", a.gpu->blobs()[k]->diff(), b.gpu->blobs()[k]->diff());
  }
  cuda::set_deterministic(was);
}

}  // namespace coco::testing
