// CPU-CUDA parity of the cuDNN/cuBLAS layers: Convolution, Pooling, InnerProduct,
// BatchNorm and BN. The CPU path is the oracle (tests/cuda_parity.h); every test is
// skipped where no CUDA device is present.
//
// Why these shapes: odd sizes (no power-of-two luck in tiling), stride 2 (the last
// window/column hangs over the edge), groups, dilation, a batch of 1, Caffe's CEIL
// pooling windows that run past the padded image, and ties in max pooling.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/cuda_math.h"
#include "engine/cuda_runtime.h"
#include "tests/cuda_parity.h"

namespace coco::testing {

namespace {

// Debug mode for a scope (restored after, so tests do not leak it to each other).
class DeterministicScope {
 public:
  explicit DeterministicScope(bool on) : saved_(cuda::deterministic()) { cuda::set_deterministic(on); }
  ~DeterministicScope() { cuda::set_deterministic(saved_); }
  DeterministicScope(const DeterministicScope&) = delete;
  DeterministicScope& operator=(const DeterministicScope&) = delete;

 private:
  bool saved_;
};

std::string conv_layer(const std::string& conv_param_body, bool bias = true) {
  return R"(name: "conv" type: "Convolution" convolution_param { )" + conv_param_body +
         (bias ? "" : " bias_term: false") +
         R"( weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "gaussian" std: 0.1 } })";
}

std::string pool_layer(const std::string& pooling_param_body) {
  return R"(name: "pool" type: "Pooling" pooling_param { )" + pooling_param_body + " }";
}

std::string ip_layer(const std::string& body) {
  return R"(name: "ip" type: "InnerProduct" inner_product_param { )" + body +
         R"( weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "gaussian" std: 0.1 } })";
}

// Convolution tolerance. The CUDA path is plain FP32 (CUDNN_FMA_MATH, never TF32),
// but cuDNN's heuristics may pick Winograd or FFT algorithms, whose transforms
// round differently from a direct sum: errors up to ~1e-4 of the largest value of a
// tensor. Tops and bottom diffs here are O(1); weight gradients are sums of a few
// hundred products reaching ~5. A wrong pad/stride/group/dilation shows as O(0.1+).
ParityOptions conv_options() {
  ParityOptions o;
  o.rtol = 1e-3;
  o.atol = 5e-4;
  return o;
}

// coco's own pooling kernels repeat the CPU's float operations in the CPU's order
// (comparisons, the window sums row-major, the same division; no multiply-add a
// compiler could fuse), so they agree bit for bit.
ParityOptions exact_options() {
  ParityOptions o;
  o.rtol = 0;
  o.atol = 0;
  return o;
}

// cuDNN's average pooling may multiply by 1/(kh*kw) instead of dividing and sum
// in its own order: a few ulps of O(1) values.
ParityOptions cudnn_pool_options() {
  ParityOptions o;
  o.rtol = 1e-5;
  o.atol = 1e-6;
  return o;
}

// InnerProduct: cuBLAS SGEMM/SGEMV (FP32) against OpenBLAS: the same products
// summed in another order (K <= 60 terms of O(0.1) here, the bias gradient in
// float instead of the CPU's double): |error| ~ 1e-6 on O(1) values.
ParityOptions gemm_options() {
  ParityOptions o;
  o.rtol = 1e-4;
  o.atol = 1e-5;
  return o;
}

// Batch normalisation: the statistics are double sums on both sides (only their
// order differs), so mean/var agree to the float rounding of the same double; the
// elementwise steps are the CPU's float operations (a CPU build with -march=native
// may fuse some of them into FMAs: one rounding apart). What remains is an ulp of a
// statistic propagated through x_hat (|x_hat| <= ~2), the running sums and the
// gradient (|dx| <= ~10 with inv_std ~ 1.7): rtol 1e-5 with a 1e-6 floor for values
// near 0.
ParityOptions bn_options() {
  ParityOptions o;
  o.rtol = 1e-5;
  o.atol = 1e-6;
  return o;
}

// ---- helpers beyond expect_cuda_parity: a layer with preloaded parameters (stored
// statistics), the CUDA copy in place, and several input shapes in turn ----

struct PairRun {
  std::vector<Shape> shapes;                 // one pass per shape (the layers reshape in between)
  Phase phase = Phase::kTrain;
  std::vector<std::vector<float>> params;    // preloaded parameter data; empty: the fillers'
  bool cuda_in_place = false;                // the CUDA copy runs with top == bottom
  float lo = -1, hi = 1;                     // bottom values
};

void expect_parity_run(const std::string& layer_text, const PairRun& run, const ParityOptions& o) {
  const proto::LayerParameter p = layer_param(layer_text);
  auto cpu = layer_registry().create(p);
  auto gpu = layer_registry().create(p);
  LocalCommunicator comm;
  LayerContext ctx_cpu, ctx_gpu;
  ctx_cpu.comm = ctx_gpu.comm = &comm;
  ctx_cpu.phase = ctx_gpu.phase = run.phase;
  Rng rng_cpu(99), rng_gpu(99);

  Blob xc(run.shapes.at(0)), yc;
  Blob xg(run.shapes.at(0), Device::kCUDA), yg(Shape{}, Device::kCUDA);
  Blob* gtop = run.cuda_in_place ? &xg : &yg;
  for (const auto& v : run.params) {
    auto b = std::make_shared<Blob>(Shape{static_cast<int64_t>(v.size())});
    std::copy(v.begin(), v.end(), b->mutable_data());
    cpu->blobs().push_back(b);
  }
  detail_parity::fill(xc.data(), run.lo, run.hi, o.seed);
  xg.data().copy_from(xc.data());
  cpu->setup({&xc}, {&yc}, &ctx_cpu, rng_cpu);
  for (auto& b : cpu->blobs()) {
    auto copy = std::make_shared<Blob>(b->shape(), Device::kCUDA);
    copy->data().copy_from(b->data());
    gpu->blobs().push_back(copy);
  }
  gpu->setup({&xg}, {gtop}, &ctx_gpu, rng_gpu);

  for (size_t k = 0; k < run.shapes.size(); ++k) {
    const std::string pass = " (pass " + std::to_string(k) + ", bottom " + shape_str(run.shapes[k]) + ")";
    xc.reshape(run.shapes[k]);
    xg.reshape(run.shapes[k]);
    detail_parity::fill(xc.data(), run.lo, run.hi, o.seed + 17 * k);
    xg.data().copy_from(xc.data());
    for (auto& b : cpu->blobs()) b->diff().zero();
    for (auto& b : gpu->blobs()) b->diff().zero();
    cpu->reshape({&xc}, {&yc});
    gpu->reshape({&xg}, {gtop});
    cpu->forward({&xc}, {&yc});
    gpu->forward({&xg}, {gtop});
    cuda::synchronize("parity run forward");
    detail_parity::expect_close(p.name() + " top" + pass, yc.data(), gtop->data(), o);
    detail_parity::fill(yc.diff(), -1, 1, o.seed + 1000 + k);
    gtop->diff().copy_from(yc.diff());
    cpu->backward({&yc}, {true}, {&xc});
    gpu->backward({gtop}, {true}, {&xg});
    cuda::synchronize("parity run backward");
    detail_parity::expect_close(p.name() + " bottom diff" + pass, xc.diff(), xg.diff(), o);
    for (size_t i = 0; i < cpu->blobs().size(); ++i) {
      detail_parity::expect_close(p.name() + " param diff " + std::to_string(i) + pass, cpu->blobs()[i]->diff(),
                                  gpu->blobs()[i]->diff(), o);
      detail_parity::expect_close(p.name() + " param data " + std::to_string(i) + pass, cpu->blobs()[i]->data(),
                                  gpu->blobs()[i]->data(), o);
    }
  }
}

// One forward and backward of the CUDA layer on fixed inputs: top, bottom diff and
// parameter diffs, on the host.
std::vector<std::vector<float>> cuda_pass(const std::string& layer_text, const Shape& shape) {
  const proto::LayerParameter p = layer_param(layer_text);
  auto gpu = layer_registry().create(p);
  LocalCommunicator comm;
  LayerContext ctx;
  ctx.comm = &comm;
  Rng rng(99);
  Blob x(shape, Device::kCUDA), y(Shape{}, Device::kCUDA);
  detail_parity::fill(x.data(), -1, 1, 5);
  gpu->setup({&x}, {&y}, &ctx, rng);
  for (auto& b : gpu->blobs()) {  // the fillers ran on the host; move them over
    Blob host(b->shape());
    host.data().copy_from(b->data());
    b->set_device(Device::kCUDA);
    b->data().copy_from(host.data());
    b->diff().zero();
  }
  gpu->reshape({&x}, {&y});
  gpu->forward({&x}, {&y});
  detail_parity::fill(y.diff(), -1, 1, 6);
  gpu->backward({&y}, {true}, {&x});
  cuda::synchronize("cuda_pass");
  std::vector<std::vector<float>> out{y.data().to_vector(), x.diff().to_vector()};
  for (auto& b : gpu->blobs()) out.push_back(b->diff().to_vector());
  return out;
}

}  // namespace

// ---------------------------------------------------------------- Convolution

TEST(CudaConvolution, OddSizes3x3Pad1) {
  COCO_REQUIRE_CUDA();
  expect_cuda_parity(conv_layer("num_output: 5 kernel_size: 3 pad: 1"), {{{2, 3, 9, 11}}}, conv_options());
}

TEST(CudaConvolution, Stride2OddInputLastColumnDropped) {
  COCO_REQUIRE_CUDA();
  // (13 + 2 - 3) / 2 + 1 = 7 rows, (15 + 2 - 3) / 2 + 1 = 8 columns.
  expect_cuda_parity(conv_layer("num_output: 6 kernel_size: 3 stride: 2 pad: 1"), {{{3, 4, 13, 15}}},
                     conv_options());
}

TEST(CudaConvolution, Groups) {
  COCO_REQUIRE_CUDA();
  expect_cuda_parity(conv_layer("num_output: 9 kernel_size: 3 pad: 1 group: 3"), {{{2, 6, 10, 9}}}, conv_options());
}

TEST(CudaConvolution, DepthwiseStride2) {
  COCO_REQUIRE_CUDA();
  expect_cuda_parity(conv_layer("num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 4"), {{{2, 4, 11, 8}}},
                     conv_options());
}

TEST(CudaConvolution, Dilation) {
  COCO_REQUIRE_CUDA();
  expect_cuda_parity(conv_layer("num_output: 4 kernel_size: 3 pad: 2 dilation: 2"), {{{2, 3, 12, 11}}},
                     conv_options());
  // Different dilations per axis, no padding.
  expect_cuda_parity(conv_layer("num_output: 3 kernel_size: 3 dilation: 2 dilation: 1"), {{{1, 2, 9, 7}}},
                     conv_options());
}

TEST(CudaConvolution, BatchOfOne5x5NoBias) {
  COCO_REQUIRE_CUDA();
  expect_cuda_parity(conv_layer("num_output: 7 kernel_size: 5 pad: 2", false), {{{1, 5, 7, 7}}}, conv_options());
}

TEST(CudaConvolution, RectangularKernelStridePad) {
  COCO_REQUIRE_CUDA();
  expect_cuda_parity(conv_layer("num_output: 4 kernel_h: 1 kernel_w: 3 stride_h: 2 stride_w: 1 pad_h: 0 pad_w: 1",
                                false),
                     {{{2, 3, 9, 6}}}, conv_options());
}

TEST(CudaConvolution, OneByOne) {
  COCO_REQUIRE_CUDA();
  expect_cuda_parity(conv_layer("num_output: 16 kernel_size: 1"), {{{3, 8, 5, 7}}}, conv_options());
}

TEST(CudaConvolution, LeNetShapes) {
  COCO_REQUIRE_CUDA();
  // The MNIST nets' first two convolutions (5x5 on 28x28, 20 -> 50 channels on 12x12).
  expect_cuda_parity(conv_layer("num_output: 20 kernel_size: 5"), {{{4, 1, 28, 28}}}, conv_options());
  expect_cuda_parity(conv_layer("num_output: 50 kernel_size: 5"), {{{2, 20, 12, 12}}}, conv_options());
}

TEST(CudaConvolution, NoBottomGradient) {
  COCO_REQUIRE_CUDA();
  // A first layer: weight and bias gradients only; the bottom diff is not touched.
  ParityOptions o = conv_options();
  o.propagate_down = {false};
  expect_cuda_parity(conv_layer("num_output: 5 kernel_size: 3 stride: 2"), {{{2, 3, 9, 9}}}, o);
}

TEST(CudaConvolution, ParamDiffsAccumulateOverPasses) {
  COCO_REQUIRE_CUDA();
  // Several passes: the algorithm cache is reused and weight/bias diffs accumulate
  // from zero each pass as on the CPU.
  ParityOptions o = conv_options();
  o.repeats = 3;
  expect_cuda_parity(conv_layer("num_output: 6 kernel_size: 3 pad: 1 group: 2"), {{{2, 4, 7, 9}}}, o);
}

TEST(CudaConvolution, InputShapeChangesUseTheirOwnAlgorithms) {
  COCO_REQUIRE_CUDA();
  // A smaller last batch, another image size, and back: descriptors reset on
  // reshape, algorithms cached per input shape.
  PairRun run;
  run.shapes = {{3, 4, 11, 9}, {1, 4, 11, 9}, {2, 4, 7, 13}, {3, 4, 11, 9}};
  expect_parity_run(conv_layer("num_output: 6 kernel_size: 3 stride: 2 pad: 1 group: 2"), run, conv_options());
}

TEST(CudaConvolution, DeterministicModeMatchesAndRepeats) {
  COCO_REQUIRE_CUDA();
  DeterministicScope det(true);
  const std::string text = conv_layer("num_output: 8 kernel_size: 3 stride: 2 pad: 1 group: 2");
  expect_cuda_parity(text, {{{4, 6, 15, 13}}}, conv_options());
  // Deterministic algorithms only: two runs agree bit for bit.
  const auto a = cuda_pass(text, {4, 6, 15, 13});
  const auto b = cuda_pass(text, {4, 6, 15, 13});
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "output " << i << " differs between two runs";
}

// ---------------------------------------------------------------- Pooling

TEST(CudaPooling, MaxCeilModeEdgeWindows) {
  COCO_REQUIRE_CUDA();
  // CEIL: ceil((10-3)/2)+1 = 5 rows, ceil((11-3)/2)+1 = 5 columns; the last row of
  // windows covers rows 8..9 only.
  expect_cuda_parity(pool_layer("pool: MAX kernel_size: 3 stride: 2"), {{{2, 3, 10, 11}}}, exact_options());
}

TEST(CudaPooling, MaxPaddedLastWindowMustStartInside) {
  COCO_REQUIRE_CUDA();
  // pad 1, k 2, s 2 on 5x5: ceil(5/2)+1 = 4, but window 3 would start at 6-1 = 5 >= H: 3.
  expect_cuda_parity(pool_layer("pool: MAX kernel_size: 2 stride: 2 pad: 1"), {{{2, 2, 5, 5}}}, exact_options());
  // Batch of 1, pad 1, k 3, s 2 on 9x8.
  expect_cuda_parity(pool_layer("pool: MAX kernel_size: 3 stride: 2 pad: 1"), {{{1, 2, 9, 8}}}, exact_options());
}

TEST(CudaPooling, MaxTiesGoToTheFirstMaximum) {
  COCO_REQUIRE_CUDA();
  // Integer inputs in {0, 1, 2}: most windows have tied maxima (as ReLU outputs tie
  // at 0). The gradient must go to the first maximum in row-major order, as on the
  // CPU; the inputs get a gradient although they are "labels" to the harness.
  ParityOptions o = exact_options();
  o.propagate_down = {true};
  ParityBottom b{{2, 3, 9, 10}};
  b.labels = 3;
  expect_cuda_parity(pool_layer("pool: MAX kernel_size: 3 stride: 2"), {b}, o);
  expect_cuda_parity(pool_layer("pool: MAX kernel_size: 3 stride: 1 pad: 1"), {b}, o);
}

TEST(CudaPooling, MaxOverlappingNonSquare) {
  COCO_REQUIRE_CUDA();
  expect_cuda_parity(pool_layer("pool: MAX kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 0"),
                     {{{1, 3, 5, 7}}}, exact_options());
}

TEST(CudaPooling, AveCeilModeEdgeWindows) {
  COCO_REQUIRE_CUDA();
  // Windows past the padded image divide by the clipped window: coco's kernels.
  expect_cuda_parity(pool_layer("pool: AVE kernel_size: 3 stride: 2"), {{{2, 3, 10, 11}}}, exact_options());
  expect_cuda_parity(pool_layer("pool: AVE kernel_size: 3 stride: 2 pad: 1"), {{{1, 2, 6, 7}}}, exact_options());
  // Rows: ceil((6+2-3)/2)+1 = 4, the last window rows 5..7 clipped at H + pad = 7.
  expect_cuda_parity(pool_layer("pool: AVE kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0"),
                     {{{1, 3, 6, 7}}}, exact_options());
}

TEST(CudaPooling, AveWindowsInsideThePaddedImageUseCudnn) {
  COCO_REQUIRE_CUDA();
  // Every window inside the (padded) image: cuDNN's COUNT_INCLUDE_PADDING is Caffe's rule.
  expect_cuda_parity(pool_layer("pool: AVE kernel_size: 2 stride: 2"), {{{2, 3, 8, 10}}}, cudnn_pool_options());
  expect_cuda_parity(pool_layer("pool: AVE kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR"), {{{1, 2, 9, 9}}},
                     cudnn_pool_options());
  expect_cuda_parity(pool_layer("pool: AVE kernel_size: 3 stride: 1 pad: 1"), {{{2, 2, 5, 6}}},
                     cudnn_pool_options());
  // CEIL that adds no window: (5+2-2)/1+1 = 6 rows, (7-3)/2+1 = 3 columns, all inside.
  expect_cuda_parity(pool_layer("pool: AVE kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 0"),
                     {{{1, 3, 5, 7}}}, cudnn_pool_options());
}

TEST(CudaPooling, AveDeterministicModeUsesCocoKernels) {
  COCO_REQUIRE_CUDA();
  DeterministicScope det(true);
  expect_cuda_parity(pool_layer("pool: AVE kernel_size: 2 stride: 2"), {{{2, 3, 8, 10}}}, exact_options());
}

TEST(CudaPooling, Global) {
  COCO_REQUIRE_CUDA();
  expect_cuda_parity(pool_layer("pool: AVE global_pooling: true"), {{{3, 4, 7, 5}}}, cudnn_pool_options());
  expect_cuda_parity(pool_layer("pool: MAX global_pooling: true"), {{{3, 4, 7, 5}}}, exact_options());
}

TEST(CudaPooling, FloorMode) {
  COCO_REQUIRE_CUDA();
  expect_cuda_parity(pool_layer("pool: MAX kernel_size: 3 stride: 2 round_mode: FLOOR"), {{{2, 2, 7, 8}}},
                     exact_options());
}

// ---------------------------------------------------------------- InnerProduct

TEST(CudaInnerProduct, FourAxisBottom) {
  COCO_REQUIRE_CUDA();
  expect_cuda_parity(ip_layer("num_output: 7"), {{{5, 3, 4, 5}}}, gemm_options());
}

TEST(CudaInnerProduct, Transpose) {
  COCO_REQUIRE_CUDA();
  expect_cuda_parity(ip_layer("num_output: 9 transpose: true"), {{{4, 21}}}, gemm_options());
}

TEST(CudaInnerProduct, BatchOfOneNoBias) {
  COCO_REQUIRE_CUDA();
  expect_cuda_parity(ip_layer("num_output: 13 bias_term: false"), {{{1, 37}}}, gemm_options());
  expect_cuda_parity(ip_layer("num_output: 13"), {{{1, 37}}}, gemm_options());
}

TEST(CudaInnerProduct, Axis2) {
  COCO_REQUIRE_CUDA();
  expect_cuda_parity(ip_layer("num_output: 6 axis: 2"), {{{2, 3, 4, 5}}}, gemm_options());
}

TEST(CudaInnerProduct, BatchSizeChanges) {
  COCO_REQUIRE_CUDA();
  // The column of ones for the bias grows with the batch and is reused when it shrinks.
  PairRun run;
  run.shapes = {{3, 10}, {8, 10}, {2, 10}, {8, 10}};
  expect_parity_run(ip_layer("num_output: 5"), run, gemm_options());
}

// ---------------------------------------------------------------- BatchNorm (Caffe's)

TEST(CudaBatchNorm, TrainingRunningSums) {
  COCO_REQUIRE_CUDA();
  // Three passes: the running sums and the factor evolve and must stay equal.
  ParityOptions o = bn_options();
  o.repeats = 3;
  expect_cuda_parity(R"(name: "bn" type: "BatchNorm" batch_norm_param { moving_average_fraction: 0.9 })",
                     {{{4, 3, 5, 7}, 0, -1, 3}}, o);
}

TEST(CudaBatchNorm, TwoAxisAndBatchOfOne) {
  COCO_REQUIRE_CUDA();
  ParityOptions o = bn_options();
  o.repeats = 2;
  expect_cuda_parity(R"(name: "bn" type: "BatchNorm")", {{{6, 10}}}, o);
  expect_cuda_parity(R"(name: "bn" type: "BatchNorm")", {{{1, 4, 3, 5}}}, o);
}

TEST(CudaBatchNorm, LargeSpatialManyChunks) {
  COCO_REQUIRE_CUDA();
  // 2 * 97 * 89 = 17266 values per channel: three reduction chunks, the last short.
  ParityOptions o = bn_options();
  o.repeats = 2;
  expect_cuda_parity(R"(name: "bn" type: "BatchNorm")", {{{2, 3, 97, 89}, 0, 0, 2}}, o);
}

TEST(CudaBatchNorm, StoredStatistics) {
  COCO_REQUIRE_CUDA();
  // TEST phase: normalise with sums / factor; nothing is updated.
  PairRun run;
  run.shapes = {{3, 4, 5, 6}, {2, 4, 3, 3}};
  run.phase = Phase::kTest;
  run.params = {{0.5f, -1.0f, 2.0f, 0.0f}, {3.0f, 1.5f, 0.2f, 6.0f}, {2.5f}};
  expect_parity_run(R"(name: "bn" type: "BatchNorm")", run, bn_options());
  // A zero factor: the statistics count as zero.
  run.params[2] = {0.0f};
  run.phase = Phase::kTrain;
  expect_parity_run(R"(name: "bn" type: "BatchNorm" batch_norm_param { use_global_stats: true })", run,
                    bn_options());
}

TEST(CudaBatchNorm, InPlace) {
  COCO_REQUIRE_CUDA();
  PairRun run;
  run.shapes = {{3, 5, 4, 7}, {3, 5, 4, 7}};
  run.cuda_in_place = true;
  expect_parity_run(R"(name: "bn" type: "BatchNorm")", run, bn_options());
}

TEST(CudaBatchNorm, InPlaceJustBelow2To32Values) {
  COCO_REQUIRE_CUDA();
  // 2^32 - 2^26 values, in place. A 32-bit index stepping by the whole grid (~2^27)
  // wraps past 2^32 here and normalises early elements again (mean |y| 1.5, and 100x
  // slower): the elementwise kernels must switch to 64-bit indices from 2^31 on.
  // Channel c holds 0 in its n = 0 plane and 4 in its n = 1 plane, so every y is
  // -+1 * sqrt(4 / (4 + eps)). Needs about 51 GB of device memory; skipped without.
  const int64_t S = (int64_t{1} << 30) - (int64_t{1} << 24);
  auto layer = layer_registry().create(layer_param(R"(name: "bn" type: "BatchNorm")"));
  LocalCommunicator comm;
  LayerContext ctx;
  ctx.comm = &comm;
  Rng rng(1);
  bool fits = true;
  {
    std::unique_ptr<Blob> x;
    try {
      x = std::make_unique<Blob>(Shape{2, 2, S}, Device::kCUDA);
      Blobs b{x.get()};
      layer->setup(b, b, &ctx, rng);
      for (auto& p : layer->blobs()) {  // made on the host, as in a Net before to_device
        Tensor keep;
        keep.copy_from(p->data());
        p->set_device(Device::kCUDA);
        p->data().copy_from(keep);
      }
      layer->reshape(b, b);
    } catch (const Error& e) {
      if (std::string(e.what()).find("out of device memory") == std::string::npos) throw;
      fits = false;
    }
    if (fits) {
      for (int64_t n = 0; n < 2; ++n)
        for (int64_t c = 0; c < 2; ++c) cuda_set(S, n == 0 ? 0.f : 4.f, x->mutable_data() + (n * 2 + c) * S, cuda::stream());
      Blobs b{x.get()};
      layer->forward(b, b);
      const double mean_abs = cuda_asum_double(x->count(), x->cdata(), cuda::stream()) / static_cast<double>(x->count());
      EXPECT_NEAR(mean_abs, std::sqrt(4.0 / (4.0 + 1e-5)), 1e-5);
    }
  }
  layer.reset();
  cuda::empty_cache();  // give the memory back to the other tests
  if (!fits) GTEST_SKIP() << "needs about 51 GB of device memory";
}

// ---------------------------------------------------------------- BN (the seed's)

namespace {
const char* kBN = R"(name: "bn" type: "BN" bn_param {
  moving_average: true decay: 0.9
  scale_filler { type: "uniform" min: 0.5 max: 2 } shift_filler { type: "uniform" min: -1 max: 1 } })";
}  // namespace

TEST(CudaBN, TrainingRunningAverages) {
  COCO_REQUIRE_CUDA();
  ParityOptions o = bn_options();
  o.repeats = 3;
  expect_cuda_parity(kBN, {{{4, 3, 5, 7}, 0, -2, 1}}, o);
}

TEST(CudaBN, TwoAxisAndBatchOfOne) {
  COCO_REQUIRE_CUDA();
  ParityOptions o = bn_options();
  o.repeats = 2;
  expect_cuda_parity(kBN, {{{7, 6}}}, o);
  expect_cuda_parity(kBN, {{{1, 3, 4, 4}}}, o);
}

TEST(CudaBN, TestPhase) {
  COCO_REQUIRE_CUDA();
  // moving_average: TEST normalises with the running statistics.
  PairRun run;
  run.shapes = {{3, 4, 5, 5}};
  run.phase = Phase::kTest;
  run.params = {{1.5f, 0.7f, 1.0f, 2.0f}, {0.1f, -0.3f, 0.0f, 1.0f}, {0.2f, -0.5f, 1.0f, 0.0f},
                {1.0f, 0.25f, 4.0f, 0.5f}};
  expect_parity_run(kBN, run, bn_options());
  // moving_average off: TEST normalises with the batch; the running values stay.
  expect_parity_run(R"(name: "bn" type: "BN" bn_param { moving_average: false })", run, bn_options());
}

TEST(CudaBN, InPlace) {
  COCO_REQUIRE_CUDA();
  PairRun run;
  run.shapes = {{2, 3, 6, 5}, {4, 3, 6, 5}};
  run.cuda_in_place = true;
  expect_parity_run(kBN, run, bn_options());
}

TEST(CudaBN, RepeatsBitForBit) {
  COCO_REQUIRE_CUDA();
  // The reductions have a fixed order: two runs agree exactly (no debug mode needed).
  const auto a = cuda_pass(kBN, {8, 16, 33, 31});
  const auto b = cuda_pass(kBN, {8, 16, 33, 31});
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "output " << i << " differs between two runs";
}

}  // namespace coco::testing
