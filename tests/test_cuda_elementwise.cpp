// CPU-CUDA parity of the elementwise and data-movement layers: ReLU, PReLU, Eltwise,
// Dropout, Scale, Concat, Split, Flatten, Input. The CPU path is the oracle
// (tests/cuda_parity.h); these tests skip where no CUDA device is present.
//
// Tolerances. Most of these layers do, per element, exactly the CPU's float
// operations in the CPU's order (the kernels use __fmul_rn/__fadd_rn where nvcc
// would otherwise fuse a multiply-add), or only copy: their results are compared
// bit for bit (exact()). Where a CPU build may itself fuse a multiply-add (GCC
// contracts a*b+c into an FMA under -march=native), the difference is the rounding
// of one product, so a few float ulps of the values involved (ulps()). Reductions
// (PReLU's slope gradient, Scale's scale/bias gradients) are summed in another order
// than on the CPU; each test says how far that can move the result.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/common.h"
#include "engine/rng.h"
#include "layers/dropout_layer.h"
#include "tests/cuda_parity.h"

namespace coco::testing {
namespace {

// Same float operations in the same order: identical bits.
ParityOptions exact() {
  ParityOptions o;
  o.rtol = 0;
  o.atol = 0;
  return o;
}

// One possibly fused multiply-add on the CPU side: values here are below 8 in
// magnitude, whose float ulp is <= 9.5e-7; 1e-6 absolute plus 1e-6 relative covers a
// half-ulp rounding difference of any product or sum involved.
ParityOptions ulps() {
  ParityOptions o;
  o.rtol = 1e-6;
  o.atol = 1e-6;
  return o;
}

ParityOptions with_phase(ParityOptions o, Phase phase, int64_t iter = 0) {
  o.phase = phase;
  o.iter = iter;
  return o;
}

// Runs a layer on the CPU and on the device from the same bottoms (given as filled
// CPU blobs), optionally in place (top 0 is bottom 0), and compares tops, bottom
// diffs and parameter diffs as expect_cuda_parity does. For what the shared harness
// does not cover: in-place runs, hand-made data (ties), a context seed.
void expect_parity_on(const std::string& text, const std::vector<std::shared_ptr<Blob>>& bottoms, bool in_place,
                      const ParityOptions& o, uint64_t ctx_seed = 1) {
  const proto::LayerParameter p = layer_param(text);
  auto cpu = layer_registry().create(p);
  auto gpu = layer_registry().create(p);
  LocalCommunicator comm;
  LayerContext cc, gc;
  cc.comm = gc.comm = &comm;
  cc.phase = gc.phase = o.phase;
  cc.iter = gc.iter = o.iter;
  cc.seed = gc.seed = ctx_seed;
  Rng rc(99), rg(99);

  std::vector<std::unique_ptr<Blob>> bc, bg;
  for (const auto& b : bottoms) {
    bc.push_back(std::make_unique<Blob>(b->shape()));
    bc.back()->data().copy_from(b->data());
    bg.push_back(std::make_unique<Blob>(b->shape(), Device::kCUDA));
    bg.back()->data().copy_from(b->data());
  }
  Blob tc_own, tg_own(Shape{}, Device::kCUDA);
  Blobs bcp, bgp;
  for (auto& b : bc) bcp.push_back(b.get());
  for (auto& b : bg) bgp.push_back(b.get());
  const Blobs tcp{in_place ? bcp[0] : &tc_own}, tgp{in_place ? bgp[0] : &tg_own};

  cpu->setup(bcp, tcp, &cc, rc);
  for (auto& b : cpu->blobs()) {
    auto copy = std::make_shared<Blob>(b->shape(), Device::kCUDA);
    copy->data().copy_from(b->data());
    gpu->blobs().push_back(copy);
  }
  gpu->setup(bgp, tgp, &gc, rg);

  std::vector<bool> down;
  for (size_t i = 0; i < bottoms.size(); ++i) down.push_back(cpu->can_backward_to(static_cast<int>(i)));
  if (!o.propagate_down.empty()) down = o.propagate_down;

  for (auto& b : cpu->blobs()) b->diff().zero();
  for (auto& b : gpu->blobs()) b->diff().zero();
  cpu->reshape(bcp, tcp);
  gpu->reshape(bgp, tgp);
  cpu->forward(bcp, tcp);
  gpu->forward(bgp, tgp);
  cuda::synchronize("parity forward");
  detail_parity::expect_close(p.name() + " top", tcp[0]->data(), tgp[0]->data(), o);
  if (!o.backward) return;
  detail_parity::fill(tcp[0]->diff(), -1, 1, o.seed + 1000);
  tgp[0]->diff().copy_from(tcp[0]->diff());
  cpu->backward(tcp, down, bcp);
  gpu->backward(tgp, down, bgp);
  cuda::synchronize("parity backward");
  for (size_t i = 0; i < bottoms.size(); ++i)
    if (down[i])
      detail_parity::expect_close(p.name() + " bottom diff " + std::to_string(i), bcp[i]->diff(), bgp[i]->diff(), o);
  for (size_t k = 0; k < cpu->blobs().size(); ++k)
    detail_parity::expect_close(p.name() + " param diff " + std::to_string(k), cpu->blobs()[k]->diff(),
                                gpu->blobs()[k]->diff(), o);
}

std::shared_ptr<Blob> uniform_blob(const Shape& s, float lo, float hi, uint64_t seed) {
  auto b = std::make_shared<Blob>(s);
  detail_parity::fill(b->data(), lo, hi, seed);
  return b;
}

// Values from {-1, 0, 1}: many exact ties between bottoms, and zeros.
std::shared_ptr<Blob> ternary_blob(const Shape& s, uint64_t seed) {
  auto b = std::make_shared<Blob>(s);
  std::mt19937_64 g(seed);
  for (int64_t i = 0; i < b->count(); ++i) b->mutable_data()[i] = static_cast<float>(static_cast<int>(g() % 3) - 1);
  return b;
}

// Shapes every elementwise layer runs on: 4-D with odd sizes, a batch of 1, 2-D, and
// one large enough for many blocks.
const std::vector<Shape>& shapes() {
  static const std::vector<Shape> s{{2, 3, 5, 7}, {1, 3, 9, 11}, {5, 13}, {1, 1}, {3, 17, 33, 35}};
  return s;
}

}  // namespace

// ---- ReLU: y = x > 0 ? x : slope x; one float multiply at most: exact ----

TEST(CudaElementwise, ReLU) {
  COCO_REQUIRE_CUDA();
  for (const char* text : {R"(name: "relu" type: "ReLU")",
                           R"(name: "lrelu" type: "ReLU" relu_param { negative_slope: 0.1 })"})
    for (const Shape& s : shapes()) {
      SCOPED_TRACE(text + (" " + shape_str(s)));
      expect_cuda_parity(text, {{s}}, exact());
    }
}

TEST(CudaElementwise, ReLUInPlace) {
  COCO_REQUIRE_CUDA();
  for (const Shape& s : {Shape{2, 3, 5, 7}, Shape{1, 9}}) {
    SCOPED_TRACE(shape_str(s));
    expect_parity_on(R"(name: "lrelu" type: "ReLU" relu_param { negative_slope: 0.2 })", {uniform_blob(s, -1, 1, 3)},
                     true, exact());
  }
}

// ---- PReLU ----
// Top and bottom diff: one multiply per element, exact in principle. The slope
// gradient sums dy * x over each (n, c) plane in float (the CPU: SIMD lanes, the GPU:
// 32 lanes then a shuffle tree), so the two sums differ by float rounding: at most
// S * 2^-24 * sum |dy x| with |dy x| <= 1 -- about 1e-5 relative for the planes here
// (S <= 1155), in practice far less. Per channel the plane sums are added in double
// on both sides. rtol 1e-4 with atol 1e-4 (for channel sums that cancel to near 0)
// bounds that with margin; the exact parts are checked bit for bit by the ReLU-like
// forward in PReLUForwardExact.

ParityOptions prelu_tol() {
  ParityOptions o;
  o.rtol = 1e-4;
  o.atol = 1e-4;
  return o;
}

TEST(CudaElementwise, PReLUPerChannel) {
  COCO_REQUIRE_CUDA();
  const char* text = R"(name: "prelu" type: "PReLU" prelu_param { filler { type: "uniform" min: -0.5 max: 0.5 } })";
  for (const Shape& s : shapes()) {
    SCOPED_TRACE(shape_str(s));
    expect_cuda_parity(text, {{s}}, prelu_tol());
  }
}

TEST(CudaElementwise, PReLUChannelShared) {
  COCO_REQUIRE_CUDA();
  const char* text = R"(name: "prelu" type: "PReLU" prelu_param { channel_shared: true
                        filler { type: "uniform" min: 0 max: 0.5 } })";
  for (const Shape& s : shapes()) {
    SCOPED_TRACE(shape_str(s));
    expect_cuda_parity(text, {{s}}, prelu_tol());
  }
}

// Forward only, to the bit: y = x > 0 ? x : a_c x.
TEST(CudaElementwise, PReLUForwardExact) {
  COCO_REQUIRE_CUDA();
  ParityOptions o = exact();
  o.backward = false;
  for (const Shape& s : shapes())
    expect_cuda_parity(R"(name: "prelu" type: "PReLU" prelu_param { filler { type: "uniform" min: -1 max: 1 } })",
                       {{s}}, o);
}

// Many channels (more than the 256 threads of the channel-sum block) with a small
// plane, and the default constant slope.
TEST(CudaElementwise, PReLUManyChannels) {
  COCO_REQUIRE_CUDA();
  for (const char* text : {R"(name: "prelu" type: "PReLU")",
                           R"(name: "prelu" type: "PReLU" prelu_param { channel_shared: true })"})
    for (const Shape& s : {Shape{3, 600}, Shape{2, 300, 2, 3}}) {
      SCOPED_TRACE(text + (" " + shape_str(s)));
      expect_cuda_parity(text, {{s}}, prelu_tol());
    }
}

// In place (the seed's nets): the layer keeps a device copy of x for the slope gradient.
TEST(CudaElementwise, PReLUInPlace) {
  COCO_REQUIRE_CUDA();
  for (const char* text : {R"(name: "prelu" type: "PReLU" prelu_param { filler { type: "uniform" min: 0 max: 0.5 } })",
                           R"(name: "prelu" type: "PReLU" prelu_param { channel_shared: true })"})
    for (const Shape& s : {Shape{2, 3, 5, 7}, Shape{1, 4, 3}}) {
      SCOPED_TRACE(text + (" " + shape_str(s)));
      expect_parity_on(text, {uniform_blob(s, -1, 1, 5)}, true, prelu_tol());
    }
}

// Only the slope gradient (propagate_down false for the bottom).
TEST(CudaElementwise, PReLUNoBottomGradient) {
  COCO_REQUIRE_CUDA();
  ParityOptions o = prelu_tol();
  o.propagate_down = {false};
  expect_cuda_parity(R"(name: "prelu" type: "PReLU")", {{{2, 3, 5, 7}}}, o);
}

// ---- Eltwise ----
// PROD and MAX: multiplications / comparisons in the CPU's order: exact. SUM: the
// CPU's acc += c * x, which a -march=native CPU build may fuse: ulps().

std::vector<ParityBottom> same_shape(const Shape& s, int n, float lo = -1, float hi = 1) {
  std::vector<ParityBottom> b;
  for (int i = 0; i < n; ++i) b.push_back({s, 0, lo, hi});
  return b;
}

TEST(CudaElementwise, EltwiseSum) {
  COCO_REQUIRE_CUDA();
  for (const Shape& s : shapes()) {
    SCOPED_TRACE(shape_str(s));
    expect_cuda_parity(R"(name: "sum" type: "Eltwise")", same_shape(s, 2), ulps());
    expect_cuda_parity(R"(name: "sum" type: "Eltwise" eltwise_param { operation: SUM coeff: 0.5 coeff: -2 coeff: 1.5 })",
                       same_shape(s, 3), ulps());
  }
}

TEST(CudaElementwise, EltwiseProd) {
  COCO_REQUIRE_CUDA();
  for (const Shape& s : shapes()) {
    SCOPED_TRACE(shape_str(s));
    expect_cuda_parity(R"(name: "prod" type: "Eltwise" eltwise_param { operation: PROD })", same_shape(s, 2), exact());
    expect_cuda_parity(R"(name: "prod" type: "Eltwise" eltwise_param { operation: PROD })", same_shape(s, 3), exact());
    // Caffe's fast gradient dy * y / x_k (bottoms away from 0, where it is defined).
    expect_cuda_parity(R"(name: "prod" type: "Eltwise" eltwise_param { operation: PROD stable_prod_grad: false })",
                       same_shape(s, 3, 0.5f, 2.0f), exact());
  }
}

TEST(CudaElementwise, EltwiseMax) {
  COCO_REQUIRE_CUDA();
  for (const Shape& s : shapes()) {
    SCOPED_TRACE(shape_str(s));
    expect_cuda_parity(R"(name: "max" type: "Eltwise" eltwise_param { operation: MAX })", same_shape(s, 2), exact());
    expect_cuda_parity(R"(name: "max" type: "Eltwise" eltwise_param { operation: MAX })", same_shape(s, 4), exact());
  }
}

// Ties: the first bottom reaching the maximum gets the whole gradient, on both paths.
TEST(CudaElementwise, EltwiseMaxTiesGoToTheFirstBottom) {
  COCO_REQUIRE_CUDA();
  for (const Shape& s : {Shape{2, 3, 5, 7}, Shape{1, 1}, Shape{4, 9}}) {
    SCOPED_TRACE(shape_str(s));
    std::vector<std::shared_ptr<Blob>> bottoms;
    for (int b = 0; b < 3; ++b) bottoms.push_back(ternary_blob(s, 40 + b));
    expect_parity_on(R"(name: "max" type: "Eltwise" eltwise_param { operation: MAX })", bottoms, false, exact());
    // Zeros among the factors: the stable PROD gradient is still defined.
    expect_parity_on(R"(name: "prod" type: "Eltwise" eltwise_param { operation: PROD })", bottoms, false, exact());
  }
}

// More bottoms than one kernel launch takes (16): the packs continue each other.
TEST(CudaElementwise, EltwiseManyBottoms) {
  COCO_REQUIRE_CUDA();
  std::string coeffs;
  for (int b = 0; b < 35; ++b) coeffs += " coeff: " + std::to_string(0.25 * (b % 7) - 0.5);
  const Shape s{3, 5, 7};
  // Factors near 1 keep a 35-fold product in range.
  expect_cuda_parity(R"(name: "prod" type: "Eltwise" eltwise_param { operation: PROD })", same_shape(s, 35, 0.8f, 1.25f),
                     exact());
  expect_cuda_parity(R"(name: "max" type: "Eltwise" eltwise_param { operation: MAX })", same_shape(s, 35), exact());
  // Exact in the default build; a native CPU build may fuse each of the 35
  // multiply-adds, every one moving the running sum (below 16 here) by half an ulp
  // (<= 1e-6): 1e-5 covers all of them.
  ParityOptions sum35;
  sum35.rtol = 1e-5;
  sum35.atol = 1e-5;
  expect_cuda_parity(R"(name: "sum" type: "Eltwise" eltwise_param { operation: SUM)" + coeffs + " }",
                     same_shape(s, 35), sum35);
}

TEST(CudaElementwise, EltwisePartialPropagation) {
  COCO_REQUIRE_CUDA();
  ParityOptions o = exact();
  o.propagate_down = {false, true, false};
  expect_cuda_parity(R"(name: "prod" type: "Eltwise" eltwise_param { operation: PROD })", same_shape({2, 3, 4}, 3), o);
  expect_cuda_parity(R"(name: "max" type: "Eltwise" eltwise_param { operation: MAX })", same_shape({2, 3, 4}, 3), o);
}

// ---- Dropout: the mask must equal the CPU's bit for bit, and kept values are one
// float multiply: exact everywhere. ----

TEST(CudaElementwise, DropoutTrain) {
  COCO_REQUIRE_CUDA();
  for (const char* text : {R"(name: "drop" type: "Dropout")",
                           R"(name: "drop7" type: "Dropout" dropout_param { dropout_ratio: 0.3 })",
                           R"(name: "d" type: "Dropout" dropout_param { dropout_ratio: 0.9 })"})
    for (int64_t iter : {0, 1, 12345})
      for (const Shape& s : shapes()) {
        SCOPED_TRACE(text + (" iter " + std::to_string(iter) + " " + shape_str(s)));
        expect_cuda_parity(text, {{s}}, with_phase(exact(), Phase::kTrain, iter));
      }
}

// The mask against engine/rng.h written out here (not through the CPU layer): a kept
// element is x / (1 - p), a dropped one 0, with the documented stream and a run seed
// other than the default.
TEST(CudaElementwise, DropoutMaskIsTheCounterMask) {
  COCO_REQUIRE_CUDA();
  const float p = 0.4f;
  const uint64_t seed = 2024;
  const int64_t iter = 77;
  auto x = uniform_blob({4, 5, 31}, 0.5f, 1.5f, 9);  // nonzero: a dropped element shows as 0
  expect_parity_on(R"(name: "drop_m" type: "Dropout" dropout_param { dropout_ratio: 0.4 })", {x}, false,
                   with_phase(exact(), Phase::kTrain, iter), seed);
  proto::LayerParameter lp = layer_param(R"(name: "drop_m" type: "Dropout" dropout_param { dropout_ratio: 0.4 })");
  auto layer = layer_registry().create(lp);
  LocalCommunicator comm;
  LayerContext ctx;
  ctx.comm = &comm;
  ctx.iter = iter;
  ctx.seed = seed;
  Rng rng(1);
  Blob xg(x->shape(), Device::kCUDA), yg(Shape{}, Device::kCUDA);
  xg.data().copy_from(x->data());
  layer->setup({&xg}, {&yg}, &ctx, rng);
  layer->forward({&xg}, {&yg});
  cuda::synchronize("dropout forward");
  const auto y = yg.data().to_vector();
  const uint64_t stream = DropoutLayer::mask_stream("drop_m", iter);
  const float scale = 1.0f / (1.0f - p);
  int64_t wrong = 0;
  for (int64_t i = 0; i < x->count(); ++i) {
    const bool keep = uniform01(seed, stream, static_cast<uint64_t>(i)) >= p;
    wrong += y[i] != (keep ? x->cdata()[i] * scale : 0.0f);
  }
  EXPECT_EQ(wrong, 0);
}

TEST(CudaElementwise, DropoutTestPhaseIsIdentity) {
  COCO_REQUIRE_CUDA();
  for (const Shape& s : shapes()) {
    SCOPED_TRACE(shape_str(s));
    expect_cuda_parity(R"(name: "drop" type: "Dropout" dropout_param { dropout_ratio: 0.6 })", {{s}},
                       with_phase(exact(), Phase::kTest));
  }
}

TEST(CudaElementwise, DropoutInPlace) {
  COCO_REQUIRE_CUDA();
  for (Phase ph : {Phase::kTrain, Phase::kTest}) {
    expect_parity_on(R"(name: "drop" type: "Dropout" dropout_param { dropout_ratio: 0.5 })",
                     {uniform_blob({2, 3, 5, 7}, -1, 1, 4)}, true, with_phase(exact(), ph, 3), 11);
  }
}

// ---- Scale ----
// Forward and bottom diff: x * s + b and dy * s per element, the CPU's operations
// (ulps(): a native CPU build may fuse x * s + b). Scale and bias gradients: sums
// over outer * inner in double on both sides (different order), rounded once to
// float: they differ by at most one float ulp of the result (6e-8 relative), inside
// ulps()' 1e-6 relative; its 1e-6 absolute covers sums that cancel to near 0.

const char* kScaleLearned =
    R"(name: "sc" type: "Scale" scale_param { filler { type: "uniform" min: -1 max: 1 } })";
const char* kScaleLearnedBias =
    R"(name: "sc" type: "Scale" scale_param { filler { type: "uniform" min: -1 max: 1 } bias_term: true
       bias_filler { type: "uniform" min: -1 max: 1 } })";

TEST(CudaElementwise, ScaleLearned) {
  COCO_REQUIRE_CUDA();
  for (const char* text : {kScaleLearned, kScaleLearnedBias})
    for (const Shape& s : shapes()) {
      SCOPED_TRACE(text + (" " + shape_str(s)));
      expect_cuda_parity(text, {{s}}, ulps());
    }
}

// axis / num_axes variants: both reduction layouts (inner >= 32: rows; inner < 32:
// cols, including inner == 1 and an inner that does not divide the 8 threads' step),
// several chunks (outer * inner > 8192), a scalar scale, the default constant filler.
TEST(CudaElementwise, ScaleAxesVariants) {
  COCO_REQUIRE_CUDA();
  struct Case {
    std::string params;
    Shape shape;
  };
  const std::vector<Case> cases = {
      {"axis: 1 num_axes: 2", {2, 3, 5, 7}},                  // D = 15, inner 7 (cols)
      {"axis: 2 num_axes: 1", {2, 3, 5, 40}},                 // D = 5, inner 40 (rows)
      {"axis: 0 num_axes: -1", {2, 3, 5, 7}},                 // D = everything, inner 1
      {"axis: 0 num_axes: 0", {2, 3, 5, 7}},                  // scalar, inner 210 (rows)
      {"axis: -1", {4, 3, 9}},                                // D = 9, inner 1 (cols)
      {"axis: 1 num_axes: 1", {3, 4, 61, 59}},                // rows, 2 chunks per d
      {"axis: 1", {9000, 5}},                                 // cols, inner 1, 2 chunks
      {"axis: 1 num_axes: 1", {1100, 7, 9}},                  // cols, inner 9, 2 chunks
      {"axis: 1 num_axes: 1", {2, 70, 3}},                    // cols, D > 32 (3 tiles)
      {"axis: 1 num_axes: 1", {1, 3, 5, 7}},                  // batch of 1, rows
  };
  for (const auto& c : cases)
    for (bool bias : {false, true}) {
      const std::string text = R"(name: "sc" type: "Scale" scale_param { )" + c.params +
                               R"( filler { type: "uniform" min: -1 max: 1 } )" +
                               (bias ? R"(bias_term: true bias_filler { type: "uniform" min: -1 max: 1 } )" : "") + "}";
      SCOPED_TRACE(text + " " + shape_str(c.shape));
      expect_cuda_parity(text, {{c.shape}}, ulps());
    }
  expect_cuda_parity(R"(name: "sc" type: "Scale")", {{{2, 3, 5, 7}}}, ulps());  // constant 1
}

// The scale as a second bottom: its diff is written (=), and may be skipped.
TEST(CudaElementwise, ScaleFromBottom) {
  COCO_REQUIRE_CUDA();
  struct Case {
    std::string params;
    Shape x, s;
  };
  const std::vector<Case> cases = {
      {"", {2, 3, 5, 7}, {3}},
      {"axis: 1", {2, 3, 5, 7}, {3, 5}},
      {"axis: 0", {2, 3, 5, 7}, {2, 3}},
      {"axis: 0", {2, 3, 5, 7}, {2, 3, 5, 7}},
      {"axis: -1", {4, 40}, {40}},
      {"", {1, 33, 8, 8}, {33}},
  };
  for (const auto& c : cases)
    for (bool bias : {false, true}) {
      const std::string text = R"(name: "sc" type: "Scale" scale_param { )" + c.params +
                               (bias ? R"( bias_term: true bias_filler { type: "uniform" min: -1 max: 1 } )" : "") +
                               "}";
      SCOPED_TRACE(text + " " + shape_str(c.x) + " by " + shape_str(c.s));
      expect_cuda_parity(text, {{c.x}, {c.s}}, ulps());
      ParityOptions o = ulps();
      o.propagate_down = {true, false};
      expect_cuda_parity(text, {{c.x}, {c.s}}, o);
      o.propagate_down = {false, true};
      expect_cuda_parity(text, {{c.x}, {c.s}}, o);
    }
}

// In place (Caffe's ResNets): the scale gradient reads the device copy of x.
TEST(CudaElementwise, ScaleInPlace) {
  COCO_REQUIRE_CUDA();
  for (const char* text : {kScaleLearned, kScaleLearnedBias})
    for (const Shape& s : {Shape{2, 3, 5, 7}, Shape{1, 6}}) {
      SCOPED_TRACE(text + (" " + shape_str(s)));
      expect_parity_on(text, {uniform_blob(s, -1, 1, 8)}, true, ulps());
    }
}

TEST(CudaElementwise, ScaleOnlyParameterGradients) {
  COCO_REQUIRE_CUDA();
  ParityOptions o = ulps();
  o.propagate_down = {false};
  expect_cuda_parity(kScaleLearnedBias, {{{2, 3, 5, 7}}}, o);
}

// ---- Concat, Split, Flatten, Input: copies and (Split) sums in the CPU's order: exact ----

TEST(CudaElementwise, Concat) {
  COCO_REQUIRE_CUDA();
  expect_cuda_parity(R"(name: "cat" type: "Concat")", {{{2, 3, 5, 7}}, {{2, 1, 5, 7}}, {{2, 4, 5, 7}}}, exact());
  expect_cuda_parity(R"(name: "cat" type: "Concat")", {{{1, 3, 5, 7}}, {{1, 2, 5, 7}}}, exact());  // batch 1
  expect_cuda_parity(R"(name: "cat" type: "Concat" concat_param { axis: 0 })", {{{2, 3, 5}}, {{1, 3, 5}}, {{3, 3, 5}}},
                     exact());
  expect_cuda_parity(R"(name: "cat" type: "Concat" concat_param { axis: -1 })", {{{4, 3, 5}}, {{4, 3, 2}}}, exact());
  expect_cuda_parity(R"(name: "cat" type: "Concat" concat_param { axis: 2 })", {{{3, 2, 7, 3}}, {{3, 2, 1, 3}}},
                     exact());
  expect_cuda_parity(R"(name: "cat" type: "Concat" concat_param { concat_dim: 1 })", {{{5, 13}}, {{5, 17}}}, exact());
  expect_cuda_parity(R"(name: "cat" type: "Concat")", {{{3, 5, 7}}}, exact());  // one bottom
  ParityOptions o = exact();
  o.propagate_down = {true, false, true};
  expect_cuda_parity(R"(name: "cat" type: "Concat")", {{{2, 3, 5}}, {{2, 1, 5}}, {{2, 4, 5}}}, o);
}

TEST(CudaElementwise, Split) {
  COCO_REQUIRE_CUDA();
  for (const Shape& s : shapes()) {
    SCOPED_TRACE(shape_str(s));
    expect_cuda_parity(R"(name: "split" type: "Split" top: "a" top: "b")", {{s}}, exact());
    expect_cuda_parity(R"(name: "split" type: "Split" top: "a")", {{s}}, exact());
  }
  // More tops than one kernel launch sums (16).
  std::string text = R"(name: "split" type: "Split")";
  for (int t = 0; t < 19; ++t) text += " top: \"t" + std::to_string(t) + "\"";
  expect_cuda_parity(text, {{{3, 5, 7}}}, exact());
}

TEST(CudaElementwise, Flatten) {
  COCO_REQUIRE_CUDA();
  for (const Shape& s : shapes()) {
    SCOPED_TRACE(shape_str(s));
    expect_cuda_parity(R"(name: "flat" type: "Flatten")", {{s}}, exact());
  }
  expect_cuda_parity(R"(name: "flat" type: "Flatten" flatten_param { axis: 0 end_axis: 1 })", {{{2, 3, 5, 7}}},
                     exact());
  expect_cuda_parity(R"(name: "flat" type: "Flatten" flatten_param { axis: 2 })", {{{2, 3, 5, 7}}}, exact());
}

// Input computes nothing: on device tops, forward and backward run (no "no CUDA
// implementation" error) and leave the tops as the data source wrote them.
TEST(CudaElementwise, InputLeavesDeviceTopsAlone) {
  COCO_REQUIRE_CUDA();
  auto layer = layer_registry().create(layer_param(
      R"(name: "data" type: "Input" top: "data" top: "label" input_param { shape { dim: 2 dim: 3 dim: 5 } shape { dim: 2 } })"));
  LocalCommunicator comm;
  LayerContext ctx;
  ctx.comm = &comm;
  Rng rng(1);
  Blob data(Shape{}, Device::kCUDA), label(Shape{}, Device::kCUDA);
  layer->setup({}, {&data, &label}, &ctx, rng);
  ASSERT_EQ(data.shape(), Shape({2, 3, 5}));
  ASSERT_EQ(label.shape(), Shape({2}));
  auto src = uniform_blob(data.shape(), -1, 1, 21);
  data.data().copy_from(src->data());
  label.data().fill(1.f);
  detail_parity::fill(data.diff(), -1, 1, 22);
  const auto diff_before = data.diff().to_vector();
  layer->reshape({}, {&data, &label});
  layer->forward({}, {&data, &label});
  layer->backward({&data, &label}, {}, {});
  cuda::synchronize("input");
  EXPECT_EQ(data.data().to_vector(), src->data().to_vector());
  EXPECT_EQ(label.data().to_vector(), std::vector<float>(2, 1.f));
  EXPECT_EQ(data.diff().to_vector(), diff_before);
  EXPECT_EQ(data.device(), Device::kCUDA);
}

}  // namespace coco::testing
