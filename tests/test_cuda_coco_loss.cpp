// The CUDA path of the fused COCO head against its CPU path (the oracle), the
// golden values of an independent double-precision implementation
// (tests/data/coco_head_golden.txt, as the CPU test uses them), and its own
// invariants: cached logits give the same bits as recomputed ones, two runs give
// the same bits, the loss and accuracy tops stay on the device.
//
// Tolerances. The head's numbers are float32 on both paths; they differ in
// summation order (cuBLAS vs OpenBLAS GEMMs; block-tree vs OpenMP-SIMD sums of
// exp), in exp itself (CUDA's expf vs the CPU's degree-6 polynomial, both within
// 2-3 ulp) and in FMA contraction (nvcc fuses a*b+c, gcc here does not). Each of
// these moves a logit by a few ulp of |z| <= alpha (~1e-6 at alpha 8) and a
// gradient entry by a few ulp of its size, so values agree to ~1e-6 relative; the
// parity tolerances below are |diff| <= 1e-5 + 1e-4 |cpu| (a wrong term -- a
// missing 1/M, a wrong margin slope, a chunk skipped -- moves values by 1e-2 or
// more). Golden values: |diff| <= 1e-5 max(1, |golden|) (the CPU test's 2e-6 plus
// room for the GPU's different rounding, still 1000x below any real bug).
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "engine/config.h"
#include "engine/cuda_runtime.h"
#include "engine/net.h"
#include "engine/solver.h"
#include "layers/coco_loss_layer.h"
#include "tests/coco_head_golden.h"
#include "tests/cuda_parity.h"

namespace coco::testing {

namespace {

// A CocoLoss layer's text: `extra` goes inside coco_loss_param.
std::string head_text(int64_t K, int chunk, float cache_mb, const std::string& extra, bool accuracy) {
  std::ostringstream s;
  s.precision(9);
  s << "name: \"head\" type: \"CocoLoss\" bottom: \"x\" bottom: \"y\" top: \"loss\"";
  if (accuracy) s << " top: \"acc\"";
  s << " coco_loss_param { num_output: " << K << " chunk_size: " << chunk << " logits_cache_mb: " << cache_mb << " "
    << extra << " }";
  return s.str();
}

struct Variant {
  const char* name;
  const char* extra;  // inside coco_loss_param
};

// Every option the CPU layer supports.
const Variant kVariants[] = {
    {"exact fixed scale", "scale: 8"},
    {"exact auto scale", "auto_scale: true target_probability: 0.995"},
    {"renormalize", "scale: 6 centroid_update: RENORMALIZE"},
    {"cosface", "scale: 7 margin_type: COSFACE margin: 0.35"},
    {"arcface", "scale: 7 margin_type: ARCFACE margin: 0.5"},
    {"arcface renormalize", "scale: 5 centroid_update: RENORMALIZE margin_type: ARCFACE margin: 0.3"},
    {"inner product", "logit_type: INNER_PRODUCT"},
    // The same cosine heads with the running maximum instead of the fixed shift,
    // and a scale large enough that some rows fall back from the fixed shift.
    {"exact running max", "scale: 8 softmax_shift: RUNNING_MAX"},
    {"renormalize running max", "scale: 6 centroid_update: RENORMALIZE softmax_shift: RUNNING_MAX"},
    {"arcface running max", "scale: 7 margin_type: ARCFACE margin: 0.5 softmax_shift: RUNNING_MAX"},
    {"exact past the fixed shift's bound", "scale: 200"},
};

struct HeadShape {
  int64_t M, D, K;
  int chunk;  // 0: the whole shard in one chunk
};

// Odd M, D and K; K not a multiple of the chunk; a batch of one; one chunk; one
// class per chunk; a chunk larger than K.
const HeadShape kShapes[] = {
    {7, 13, 29, 8}, {1, 5, 11, 4}, {33, 64, 300, 64}, {9, 6, 13, 0}, {5, 3, 7, 1}, {4, 17, 10, 1000},
};

}  // namespace

TEST(CudaCocoLoss, ParityEveryOptionAndShapeCacheOnAndOff) {
  COCO_REQUIRE_CUDA();
  for (const Variant& v : kVariants) {
    for (const HeadShape& s : kShapes) {
      for (float cache : {0.f, 64.f}) {
        for (bool accuracy : {false, true}) {
          SCOPED_TRACE(std::string(v.name) + " M " + std::to_string(s.M) + " D " + std::to_string(s.D) + " K " +
                       std::to_string(s.K) + " chunk " + std::to_string(s.chunk) + " cache " +
                       std::to_string(cache) + (accuracy ? " +accuracy" : ""));
          ParityOptions o;  // see the file comment for the tolerances
          o.rtol = 1e-4;
          o.atol = 1e-5;
          // Features in [-1, 1) (the harness default); labels in [0, K).
          expect_cuda_parity(head_text(s.K, s.chunk, cache, v.extra, accuracy),
                             {ParityBottom{{s.M, s.D}}, ParityBottom{{s.M}, static_cast<int>(s.K)}}, o);
        }
      }
    }
  }
}

TEST(CudaCocoLoss, ParityFourDimensionalFeatures) {
  COCO_REQUIRE_CUDA();
  // Features (M, C, H, W) are flattened from axis 1, as on the CPU.
  ParityOptions o;
  o.rtol = 1e-4;
  o.atol = 1e-5;
  expect_cuda_parity(head_text(23, 5, 64, "scale: 8", true),
                     {ParityBottom{{6, 3, 2, 2}}, ParityBottom{{6}, 23}}, o);
}

TEST(CudaCocoLoss, ParityTestPhaseForwardOnly) {
  COCO_REQUIRE_CUDA();
  // Test phase: loss and accuracy only, no gradients (and nothing cached).
  ParityOptions o;
  o.rtol = 1e-4;
  o.atol = 1e-5;
  o.phase = Phase::kTest;
  o.backward = false;
  for (const Variant& v : kVariants)
    expect_cuda_parity(head_text(29, 8, 64, v.extra, true), {ParityBottom{{7, 13}}, ParityBottom{{7}, 29}}, o);
}

TEST(CudaCocoLoss, ParityLargerShapeSeveralPasses) {
  COCO_REQUIRE_CUDA();
  // A head closer to real use (D = 512, many chunks, half of them cached), run
  // three times: RENORMALIZE rewrites the centroids every pass, and the scratch is
  // reused. Logits here reach alpha = 16 and sum 512 products, so a logit moves by
  // up to ~1e-5 between the paths; the loss and gradients stay within 1e-4 relative.
  ParityOptions o;
  o.rtol = 2e-4;
  o.atol = 2e-5;
  o.repeats = 3;
  // 64 x 256 floats = 64 KiB per chunk; 0.2 MiB holds three of the eight chunks.
  for (const char* extra : {"scale: 16", "scale: 16 centroid_update: RENORMALIZE",
                            "scale: 16 margin_type: ARCFACE margin: 0.5"})
    expect_cuda_parity(head_text(2000, 256, 0.2f, extra, true), {ParityBottom{{64, 512}}, ParityBottom{{64}, 2000}},
                       o);
}

namespace {

// A device tensor holding `v` (through a host tensor: the one explicit copy).
void set_device_tensor(Tensor& t, const Shape& shape, const std::vector<double>& v) {
  Tensor h(shape);
  ASSERT_EQ(static_cast<size_t>(h.count()), v.size());
  for (size_t i = 0; i < v.size(); ++i) h.data()[i] = static_cast<float>(v[i]);
  t.copy_from(h);
}

// One CUDA head run from given inputs: loss, grad_x, grad_c (and centroids after).
struct CudaRun {
  float loss = 0;
  std::vector<float> grad_x, grad_c, centroids;
  int64_t cached = -1;
};

// With ids, the labels go in as int32 class ids (what coco's sources write).
CudaRun run_cuda_head(const std::string& text, int64_t M, int64_t D, int64_t K, const std::vector<double>& x,
                      const std::vector<double>& labels, const std::vector<double>& centroids, bool ids = false) {
  CudaRun out;
  CocoLossLayer layer(layer_param(text));
  Blob bx({M, D}, Device::kCUDA), by({M}, Device::kCUDA), loss(Shape{}, Device::kCUDA);
  set_device_tensor(bx.data(), {M, D}, x);
  if (ids) {
    by.set_element_type(ElementType::kInt32);
    Tensor h({M});
    for (int64_t i = 0; i < M; ++i) reinterpret_cast<int32_t*>(h.data())[i] = static_cast<int32_t>(labels[i]);
    by.data().copy_from(h);
  } else {
    set_device_tensor(by.data(), {M}, labels);
  }
  auto c = std::make_shared<Blob>(Shape{K, D}, Device::kCUDA);
  set_device_tensor(c->data(), {K, D}, centroids);
  c->diff().zero();
  layer.blobs().push_back(c);  // setup checks its shape instead of filling
  LayerHarness h;
  h.setup(layer, {&bx, &by}, {&loss});
  layer.forward({&bx, &by}, {&loss});
  Tensor one({1});
  one.data()[0] = 1.f;  // the loss top's diff: its loss weight, as the Net seeds it
  loss.diff().copy_from(one);
  layer.backward({&loss}, {true, false}, {&bx, &by});
  cuda::synchronize("coco head test");
  out.loss = loss.data().to_vector()[0];
  out.grad_x = bx.diff().to_vector();
  out.grad_c = c->diff().to_vector();
  out.centroids = c->data().to_vector();
  out.cached = layer.cached_chunks();
  return out;
}

}  // namespace

TEST(CudaCocoLoss, MatchesGoldenValues) {
  COCO_REQUIRE_CUDA();
  auto cases = read_golden();
  ASSERT_EQ(cases.size(), 7u);
  for (const auto& gc : cases) {
    for (int chunk : {0, 1, 3, 1000}) {
      for (float cache : {0.f, 64.f}) {
        SCOPED_TRACE(gc.name + " chunk " + std::to_string(chunk) + " cache " + std::to_string(cache));
        const CudaRun r = run_cuda_head(head_text(gc.K, chunk, cache, golden_extra(gc), false), gc.M, gc.D, gc.K,
                                        gc.v.at("x"), gc.v.at("labels"), gc.v.at("centroids"));
        auto tol = [](double want) { return 1e-5 * std::max(1.0, std::fabs(want)); };  // see the file comment
        const double want = gc.v.at("loss")[0];
        EXPECT_NEAR(r.loss, want, tol(want));
        const auto& gx = gc.v.at("grad_x");
        ASSERT_EQ(r.grad_x.size(), gx.size());
        for (size_t i = 0; i < gx.size(); ++i) EXPECT_NEAR(r.grad_x[i], gx[i], tol(gx[i])) << "grad_x " << i;
        const auto& gcv = gc.v.at("grad_c");
        ASSERT_EQ(r.grad_c.size(), gcv.size());
        for (size_t i = 0; i < gcv.size(); ++i) EXPECT_NEAR(r.grad_c[i], gcv[i], tol(gcv[i])) << "grad_c " << i;
        if (gc.mode == "RENORMALIZE" && gc.logit == "COSINE") {
          for (int64_t k = 0; k < gc.K; ++k) {
            double n = 0;
            for (int64_t d = 0; d < gc.D; ++d) n += double(r.centroids[k * gc.D + d]) * r.centroids[k * gc.D + d];
            EXPECT_NEAR(n, 1.0, 1e-5) << "centroid row " << k << " not renormalised";
          }
        }
      }
    }
  }
}

TEST(CudaCocoLoss, CachedLogitsEqualRecomputedBitForBit) {
  COCO_REQUIRE_CUDA();
  // The CPU test's head: K = 37 in chunks of 8 (five chunks, the last of 5), M = 11.
  const int64_t M = 11, D = 9, K = 37;
  std::vector<double> x(M * D), labels(M), centroids(K * D);
  std::mt19937_64 g(5);
  std::uniform_real_distribution<double> u(-2, 2);
  for (auto& v : x) v = static_cast<float>(u(g));
  for (auto& v : centroids) v = static_cast<float>(u(g));
  for (int64_t i = 0; i < M; ++i) labels[i] = static_cast<double>((i * 7) % K);
  for (const Variant& v : kVariants) {
    SCOPED_TRACE(v.name);
    auto run = [&](float cache_mb) { return run_cuda_head(head_text(K, 8, cache_mb, v.extra, false), M, D, K, x, labels, centroids); };
    const CudaRun none = run(0.f), all = run(64.f), some = run(1000.f / (1 << 20));
    // 11 x 8 floats = 352 bytes per chunk; 1000 bytes hold two of the five chunks.
    EXPECT_EQ(none.cached, 0);
    EXPECT_EQ(all.cached, 5);
    EXPECT_EQ(some.cached, 2);
    // The same GEMM on the same inputs into equally aligned slots: the same bits.
    for (const CudaRun* r : {&all, &some}) {
      EXPECT_EQ(r->loss, none.loss);
      EXPECT_EQ(r->grad_x, none.grad_x);
      EXPECT_EQ(r->grad_c, none.grad_c);
      EXPECT_EQ(r->centroids, none.centroids);
    }
    // Deterministic kernels (no atomics): a second run gives the same bits.
    const CudaRun again = run(0.f);
    EXPECT_EQ(again.loss, none.loss);
    EXPECT_EQ(again.grad_x, none.grad_x);
    EXPECT_EQ(again.grad_c, none.grad_c);
  }
}

TEST(CudaCocoLoss, SecondStepAllocatesNoDeviceMemory) {
  COCO_REQUIRE_CUDA();
  // Scratch grows to its steady-state size in the first step and is reused: later
  // steps (same batch) ask the allocator for nothing, with the cache partly full.
  CocoLossLayer layer(layer_param(head_text(300, 64, 0.01f, "scale: 8", true)));
  Blob x({33, 64}, Device::kCUDA), y({33}, Device::kCUDA), loss(Shape{}, Device::kCUDA), acc(Shape{}, Device::kCUDA);
  std::vector<double> xv(33 * 64), yv(33), cv(300 * 64);
  for (size_t i = 0; i < xv.size(); ++i) xv[i] = std::sin(0.37 * i);
  for (size_t i = 0; i < yv.size(); ++i) yv[i] = static_cast<double>((i * 11) % 300);
  for (size_t i = 0; i < cv.size(); ++i) cv[i] = std::cos(0.11 * i);
  set_device_tensor(x.data(), {33, 64}, xv);
  set_device_tensor(y.data(), {33}, yv);
  auto c = std::make_shared<Blob>(Shape{300, 64}, Device::kCUDA);
  set_device_tensor(c->data(), {300, 64}, cv);
  layer.blobs().push_back(c);
  LayerHarness h;
  h.setup(layer, {&x, &y}, {&loss, &acc});
  auto step = [&] {
    c->diff().zero();
    layer.reshape({&x, &y}, {&loss, &acc});
    layer.forward({&x, &y}, {&loss, &acc});
    loss.diff().fill(1.f);
    layer.backward({&loss, &acc}, {true, false}, {&x, &y});
  };
  step();
  cuda::synchronize("coco head test");
  EXPECT_GT(layer.cached_chunks(), 0);
  const auto before = cuda::memory_stats();
  step();
  step();
  cuda::synchronize("coco head test");
  const auto after = cuda::memory_stats();
  EXPECT_EQ(after.in_use, before.in_use);
  EXPECT_EQ(after.device_allocs, before.device_allocs);
}

TEST(CudaCocoLoss, BadLabelGivesNanLossOnTheDevice) {
  COCO_REQUIRE_CUDA();
  // The CPU path throws on a label outside [0, K); the CUDA path cannot see labels
  // without a copy to the host, so the loss (computed on the device) is NaN, which
  // the trainer's non-finite check reports.
  const std::vector<double> x = {0.5, -0.2, 0.1, 0.3, 0.9, -0.4};
  for (double bad : {4.0, -1.0, 1.5}) {
    SCOPED_TRACE(bad);
    const CudaRun r = run_cuda_head(head_text(4, 0, 0, "scale: 2", false), 2, 3, 4, x, {1.0, bad},
                                    std::vector<double>(12, 0.25));
    EXPECT_TRUE(std::isnan(r.loss)) << r.loss;
  }
}

// Labels as int32 ids give the float labels' results bit for bit on the device, and
// an id outside [0, K) a NaN loss (layers/labels.h; the head's shard columns).
TEST(CudaCocoLoss, IdLabelsEqualFloatLabels) {
  COCO_REQUIRE_CUDA();
  for (const auto& gc : read_golden()) {
    SCOPED_TRACE(gc.name);
    const std::string text = head_text(gc.K, 2, 64, golden_extra(gc), false);
    const CudaRun f = run_cuda_head(text, gc.M, gc.D, gc.K, gc.v.at("x"), gc.v.at("labels"), gc.v.at("centroids"));
    const CudaRun i =
        run_cuda_head(text, gc.M, gc.D, gc.K, gc.v.at("x"), gc.v.at("labels"), gc.v.at("centroids"), true);
    EXPECT_EQ(f.loss, i.loss);
    EXPECT_EQ(f.grad_x, i.grad_x);
    EXPECT_EQ(f.grad_c, i.grad_c);
  }
  const std::vector<double> x = {0.5, -0.2, 0.1, 0.3, 0.9, -0.4};
  for (double bad : {4.0, -1.0}) {
    SCOPED_TRACE(bad);
    const CudaRun r = run_cuda_head(head_text(4, 0, 0, "scale: 2", false), 2, 3, 4, x, {1.0, bad},
                                    std::vector<double>(12, 0.25), true);
    EXPECT_TRUE(std::isnan(r.loss)) << r.loss;
  }
}

TEST(CudaCocoLoss, TopDiffScalesTheFeatureGradient) {
  COCO_REQUIRE_CUDA();
  // backward() writes w * dL/dx with w the loss top's diff read on the device
  // (the Net sets it to loss_weight, the centroid gradient's scale).
  const int64_t M = 3, D = 4, K = 5;
  std::vector<double> x(M * D), centroids(K * D);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(1.0 + i);
  for (size_t i = 0; i < centroids.size(); ++i) centroids[i] = std::cos(2.0 + 3 * i);
  const std::vector<double> labels = {0, 4, 2};
  const std::string text = head_text(K, 2, 0, "scale: 4", false);
  const std::string weighted = "loss_weight: 2.5 " + text;
  const CudaRun one = run_cuda_head(text, M, D, K, x, labels, centroids);

  CocoLossLayer layer(layer_param(weighted));
  Blob bx({M, D}, Device::kCUDA), by({M}, Device::kCUDA), loss(Shape{}, Device::kCUDA);
  set_device_tensor(bx.data(), {M, D}, x);
  set_device_tensor(by.data(), {M}, labels);
  auto c = std::make_shared<Blob>(Shape{K, D}, Device::kCUDA);
  set_device_tensor(c->data(), {K, D}, centroids);
  c->diff().zero();
  layer.blobs().push_back(c);
  LayerHarness h;
  h.setup(layer, {&bx, &by}, {&loss});
  layer.forward({&bx, &by}, {&loss});
  Tensor w({1});
  w.data()[0] = 2.5f;
  loss.diff().copy_from(w);
  layer.backward({&loss}, {true, false}, {&bx, &by});
  cuda::synchronize("coco head test");
  const auto gx = bx.diff().to_vector(), gc = c->diff().to_vector();
  for (size_t i = 0; i < gx.size(); ++i) EXPECT_FLOAT_EQ(gx[i], 2.5f * one.grad_x[i]) << i;
  for (size_t i = 0; i < gc.size(); ++i) EXPECT_NEAR(gc[i], 2.5f * one.grad_c[i], 1e-6 + 1e-6 * std::fabs(gc[i])) << i;
}

}  // namespace coco::testing

namespace coco::testing {
namespace {

// Three SGD steps (momentum, weight decay) of a sampling head on one device: the
// step's losses and accuracies, the sampled rows of the last step, the centroids.
struct SampledRun {
  std::vector<float> losses, accuracies, centroids;
  std::vector<int64_t> rows;
};

SampledRun sampled_steps(Device dev) {
  proto::NetParameter np;
  parse_text(R"(
    input: "x" input_shape { dim: 9 dim: 13 }
    input: "y" input_shape { dim: 9 }
    layer { name: "head" type: "CocoLoss" bottom: "x" bottom: "y" top: "loss" top: "acc"
            coco_loss_param { num_output: 300 chunk_size: 16 logits_cache_mb: 0.01 scale: 8 sample_rate: 0.1 } })",
             "<net>", &np);
  LocalCommunicator comm;
  Net net(np, Phase::kTrain, &comm, 3);
  proto::SolverParameter sp;
  parse_text("base_lr: 0.5 momentum: 0.9 weight_decay: 0.01", "<solver>", &sp);
  SgdSolver solver(sp, &net);
  net.to_device(dev);
  solver.to_device(dev);
  Tensor x({9, 13}), y({9});
  detail_parity::fill(x, -1, 1, 21);
  for (int64_t i = 0; i < 9; ++i) y.data()[i] = static_cast<float>((i * 37) % 300);
  net.input_blobs()[0]->data().copy_from(x);
  net.input_blobs()[1]->data().copy_from(y);
  SampledRun out;
  for (int it = 0; it < 3; ++it) {
    net.set_iter(it);
    net.clear_param_diffs();
    out.losses.push_back(static_cast<float>(net.forward_backward()));
    out.accuracies.push_back(net.blob("acc")->data().to_vector()[0]);
    solver.apply_update(it);
  }
  if (dev == Device::kCUDA) cuda::synchronize("sampled head test");
  out.rows = dynamic_cast<const CocoLossLayer&>(net.layer(net.num_layers() - 1)).sampled_rows();
  out.centroids = net.params()[0].blob->data().to_vector();
  return out;
}

}  // namespace

TEST(CudaCocoLoss, SampledTrainingStepsMatchTheCpu) {
  COCO_REQUIRE_CUDA();
  // The draw is made on the host from the same labels, so both devices keep the same
  // 30 of 300 classes; the gathered rows, their GEMMs, the renumbered accuracy and
  // the update of the sampled rows alone (sgd_rows_kernel) agree with the CPU.
  const SampledRun cpu = sampled_steps(Device::kCPU), gpu = sampled_steps(Device::kCUDA);
  EXPECT_EQ(gpu.rows, cpu.rows);
  EXPECT_EQ(gpu.accuracies, cpu.accuracies);
  for (size_t i = 0; i < cpu.losses.size(); ++i) EXPECT_NEAR(gpu.losses[i], cpu.losses[i], 1e-5) << "step " << i;
  ASSERT_EQ(gpu.centroids.size(), cpu.centroids.size());
  for (size_t i = 0; i < cpu.centroids.size(); ++i)
    EXPECT_NEAR(gpu.centroids[i], cpu.centroids[i], 1e-5 * std::max(1.f, std::fabs(cpu.centroids[i]))) << i;
}

}  // namespace coco::testing
