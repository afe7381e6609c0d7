#include "layers/convolution_layer.h"

#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/common.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

namespace {

struct ConvCase {
  int64_t n, c, h, w, co, kh, kw, sh, sw, ph, pw, dh, dw, group;
  bool bias;
};

// engine DEFAULT: oneDNN where the build has it; CAFFE: im2col + GEMM (the reference).
proto::LayerParameter conv_param(const ConvCase& k, proto::Engine engine = proto::DEFAULT) {
  auto p = layer_param(R"(name: "conv" type: "Convolution")");
  auto* cp = p.mutable_convolution_param();
  cp->set_engine(engine);
  cp->set_num_output(k.co);
  cp->set_kernel_h(k.kh);
  cp->set_kernel_w(k.kw);
  cp->set_stride_h(k.sh);
  cp->set_stride_w(k.sw);
  cp->set_pad_h(k.ph);
  cp->set_pad_w(k.pw);
  cp->add_dilation(k.dh);
  cp->add_dilation(k.dw);
  cp->set_group(k.group);
  cp->set_bias_term(k.bias);
  cp->mutable_weight_filler()->set_type("gaussian");
  cp->mutable_bias_filler()->set_type("gaussian");
  return p;
}

// Direct definition: y[n,o,oh,ow] = b[o] + sum_{c in group(o), i, j} w[o,c,i,j] *
// x[n, g*Cg + c, oh*sh - ph + i*dh, ow*sw - pw + j*dw], 0 outside the image.
std::vector<double> reference_conv(const ConvCase& k, const Blob& x, const Blob& wt, const Blob* b) {
  const int64_t ho = (k.h + 2 * k.ph - (k.dh * (k.kh - 1) + 1)) / k.sh + 1;
  const int64_t wo = (k.w + 2 * k.pw - (k.dw * (k.kw - 1) + 1)) / k.sw + 1;
  const int64_t cg = k.c / k.group, og = k.co / k.group;
  std::vector<double> y(k.n * k.co * ho * wo);
  for (int64_t n = 0; n < k.n; ++n)
    for (int64_t o = 0; o < k.co; ++o)
      for (int64_t oh = 0; oh < ho; ++oh)
        for (int64_t ow = 0; ow < wo; ++ow) {
          double s = b ? b->cdata()[o] : 0.0;
          const int64_t g = o / og;
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t i = 0; i < k.kh; ++i)
              for (int64_t j = 0; j < k.kw; ++j) {
                const int64_t ih = oh * k.sh - k.ph + i * k.dh, iw = ow * k.sw - k.pw + j * k.dw;
                if (ih < 0 || ih >= k.h || iw < 0 || iw >= k.w) continue;
                s += static_cast<double>(wt.cdata()[((o * cg + c) * k.kh + i) * k.kw + j]) *
                     x.cdata()[((n * k.c + g * cg + c) * k.h + ih) * k.w + iw];
              }
          y[((n * k.co + o) * ho + oh) * wo + ow] = s;
        }
  return y;
}

const std::vector<ConvCase> kCases = {
    // n  c  h  w co kh kw sh sw ph pw dh dw g  bias
    {2, 3, 5, 6, 4, 3, 2, 2, 1, 1, 0, 1, 2, 1, true},   // non-square kernel, mixed stride/dilation
    {1, 4, 7, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2, true},   // groups, batch of 1
    {3, 4, 6, 6, 2, 2, 2, 2, 2, 1, 1, 2, 2, 2, false},  // stride 2, pad 1, dilation 2, no bias
    {2, 1, 9, 7, 3, 5, 5, 1, 1, 2, 2, 1, 1, 1, true},   // LeNet-style 5x5, pad 2
    {2, 2, 4, 5, 3, 1, 1, 2, 3, 0, 1, 1, 1, 1, true},   // 1x1 with stride and asymmetric pad
};

}  // namespace

const proto::Engine kEngines[] = {proto::CAFFE, proto::DEFAULT};

TEST(ConvolutionLayer, ForwardMatchesDefinition) {
  for (auto engine : kEngines)
  for (size_t ci = 0; ci < kCases.size(); ++ci) {
    const ConvCase& k = kCases[ci];
    SCOPED_TRACE(std::string("engine ") + proto::Engine_Name(engine));
    ConvolutionLayer layer(conv_param(k, engine));
    Blob x({k.n, k.c, k.h, k.w}), y;
    fill_uniform(x, -1, 1, 7 + ci);
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
    ASSERT_EQ(layer.blobs().size(), k.bias ? 2u : 1u);
    EXPECT_EQ(layer.blobs()[0]->shape(), (Shape{k.co, k.c / k.group, k.kh, k.kw}));
    layer.forward({&x}, {&y});
    const int64_t ho = (k.h + 2 * k.ph - (k.dh * (k.kh - 1) + 1)) / k.sh + 1;
    const int64_t wo = (k.w + 2 * k.pw - (k.dw * (k.kw - 1) + 1)) / k.sw + 1;
    ASSERT_EQ(y.shape(), (Shape{k.n, k.co, ho, wo})) << "case " << ci;
    const auto ref = reference_conv(k, x, *layer.blobs()[0], k.bias ? layer.blobs()[1].get() : nullptr);
    for (int64_t i = 0; i < y.count(); ++i) EXPECT_NEAR(y.cdata()[i], ref[i], 1e-4) << "case " << ci << " i " << i;
  }
}

TEST(ConvolutionLayer, OutputSizeFollowsCaffe) {
  // LeNet++ conv: 28x28, 5x5, pad 2 keeps the size; stride 3 floors.
  auto p = layer_param(R"(name: "c" type: "Convolution"
      convolution_param { num_output: 2 kernel_size: 5 pad: 2 stride: 3 })");
  ConvolutionLayer layer(p);
  Blob x({1, 1, 28, 28}), y;
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  EXPECT_EQ(y.shape(), (Shape{1, 2, 10, 10}));  // (28 + 4 - 5) / 3 + 1
  // Caffe's default fillers are constant 0.
  for (auto& b : layer.blobs())
    for (int64_t i = 0; i < b->count(); ++i) EXPECT_EQ(b->cdata()[i], 0.f);
}

TEST(ConvolutionLayer, GradientCheck) {
  for (auto engine : kEngines)
  for (size_t ci = 0; ci < kCases.size(); ++ci) {
    const ConvCase& k = kCases[ci];
    SCOPED_TRACE(std::string("engine ") + proto::Engine_Name(engine));
    ConvolutionLayer layer(conv_param(k, engine));
    Blob x({k.n, k.c, k.h, k.w}), y;
    fill_uniform(x, -1, 1, 17 + ci);
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
    SCOPED_TRACE("case " + std::to_string(ci));
    GradientChecker().check(layer, {&x}, {&y});
  }
}

// Several images per GEMM, and several threads each taking a slice of the batch,
// must give what one image at a time on one thread gives, short last chunks included.
TEST(ConvolutionLayer, ColumnBatchingAndThreadsMatchOneImageAtATime) {
  const ConvCase k{7, 4, 7, 6, 6, 3, 2, 2, 1, 1, 1, 1, 2, 2, true};
  const int64_t col_per_image_bytes = 4 * k.c * k.kh * k.kw * 4 * 6;  // Ho = 4, Wo = 6
  const int saved_threads = omp_get_max_threads();
  std::vector<float> ref_y, ref_dx, ref_dw, ref_db;
  for (int threads : {1, 2, 3}) {
    const int64_t per_slice = (k.n + threads - 1) / threads;
    for (int64_t limit : {int64_t{1}, 2 * col_per_image_bytes, ConvolutionLayer::kDefaultColBufferBytes}) {
      omp_set_num_threads(threads);
      ConvolutionLayer layer(conv_param(k, proto::CAFFE));
      layer.set_col_buffer_limit(limit);
      Blob x({k.n, k.c, k.h, k.w}), y;
      fill_uniform(x, -1, 1, 3);
      LayerHarness h;  // same seed: same weights in every layer
      h.setup(layer, {&x}, {&y});
      layer.forward({&x}, {&y});
      const int64_t expect_chunk = limit == 1 ? 1 : limit == 2 * col_per_image_bytes ? 2 : per_slice;
      EXPECT_EQ(layer.images_per_chunk(), expect_chunk);
      for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = std::sin(0.37f * i);
      for (auto& b : layer.blobs()) b->diff().fill(0.25f);  // accumulates onto this
      layer.backward({&y}, {true}, {&x});
      omp_set_num_threads(saved_threads);
      if (ref_y.empty()) {
        ref_y = y.data().to_vector();
        ref_dx = x.diff().to_vector();
        ref_dw = layer.blobs()[0]->diff().to_vector();
        ref_db = layer.blobs()[1]->diff().to_vector();
        continue;
      }
      SCOPED_TRACE("threads " + std::to_string(threads) + " limit " + std::to_string(limit));
      auto same = [](const std::vector<float>& a, const Tensor& b, const char* what) {
        ASSERT_EQ(static_cast<int64_t>(a.size()), b.count());
        for (size_t i = 0; i < a.size(); ++i)
          EXPECT_NEAR(a[i], b.at(i), 1e-5 * std::max(1.f, std::fabs(a[i]))) << what << " " << i;
      };
      same(ref_y, y.data(), "top");
      same(ref_dx, x.diff(), "bottom diff");
      same(ref_dw, layer.blobs()[0]->diff(), "weight diff");
      same(ref_db, layer.blobs()[1]->diff(), "bias diff");
    }
  }
}

// Parameter diffs accumulate (+=); the bottom diff is written (=).
// The oneDNN path against the im2col reference at LeNet++ shapes and odd ones,
// forward and backward (float sums in different orders: relative 1e-4).
TEST(ConvolutionLayer, OneDnnMatchesIm2col) {
  if (!dnnl_available()) GTEST_SKIP() << "built without oneDNN";
  std::vector<ConvCase> cases = kCases;
  cases.push_back({3, 32, 14, 14, 64, 5, 5, 1, 1, 2, 2, 1, 1, 1, true});  // LeNet++ conv2
  cases.push_back({1, 5, 11, 9, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, true});     // odd sizes, batch 1
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const ConvCase& k = cases[ci];
    SCOPED_TRACE("case " + std::to_string(ci));
    std::vector<std::vector<float>> out[2];
    for (int e = 0; e < 2; ++e) {
      ConvolutionLayer layer(conv_param(k, e == 0 ? proto::CAFFE : proto::DEFAULT));
      Blob x({k.n, k.c, k.h, k.w}), y;
      fill_uniform(x, -1, 1, 40 + ci);
      LayerHarness h;
      h.setup(layer, {&x}, {&y});
      EXPECT_EQ(layer.uses_dnnl(), e == 1);
      layer.forward({&x}, {&y});
      for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = std::cos(0.11f * i);
      for (auto& b : layer.blobs()) b->diff().zero();
      layer.backward({&y}, {true}, {&x});
      out[e] = {y.data().to_vector(), x.diff().to_vector()};
      for (auto& b : layer.blobs()) out[e].push_back(b->diff().to_vector());
    }
    ASSERT_EQ(out[0].size(), out[1].size());
    for (size_t t = 0; t < out[0].size(); ++t)
      for (size_t i = 0; i < out[0][t].size(); ++i)
        EXPECT_NEAR(out[1][t][i], out[0][t][i], 1e-4 * std::max(1.f, std::fabs(out[0][t][i])))
            << "tensor " << t << " element " << i;
  }
}

TEST(ConvolutionLayer, BackwardAccumulatesParamsAndWritesBottom) {
  const ConvCase& k = kCases[0];
  ConvolutionLayer layer(conv_param(k));
  Blob x({k.n, k.c, k.h, k.w}), y;
  fill_uniform(x, -1, 1, 5);
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  layer.forward({&x}, {&y});
  fill_uniform(y, -1, 1, 9);
  y.diff().copy_from(y.data());
  for (auto& b : layer.blobs()) b->diff().zero();
  layer.backward({&y}, {true}, {&x});
  const auto dx1 = x.diff().to_vector(), dw1 = layer.blobs()[0]->diff().to_vector(),
             db1 = layer.blobs()[1]->diff().to_vector();
  x.diff().fill(123.f);
  layer.backward({&y}, {true}, {&x});
  for (size_t i = 0; i < dx1.size(); ++i) EXPECT_FLOAT_EQ(x.cdiff()[i], dx1[i]);
  for (size_t i = 0; i < dw1.size(); ++i) EXPECT_FLOAT_EQ(layer.blobs()[0]->cdiff()[i], 2 * dw1[i]);
  for (size_t i = 0; i < db1.size(); ++i) EXPECT_FLOAT_EQ(layer.blobs()[1]->cdiff()[i], 2 * db1[i]);
  // propagate_down false leaves the bottom diff alone.
  x.diff().fill(7.f);
  layer.backward({&y}, {false}, {&x});
  for (int64_t i = 0; i < x.count(); ++i) EXPECT_EQ(x.cdiff()[i], 7.f);
}

TEST(ConvolutionLayer, KeepsLoadedWeightsAndChecksTheirShape) {
  const ConvCase& k = kCases[1];
  {
    ConvolutionLayer layer(conv_param(k));
    layer.blobs().push_back(std::make_shared<Blob>(Shape{k.co, k.c / k.group, k.kh, k.kw}));
    layer.blobs().push_back(std::make_shared<Blob>(Shape{k.co}));
    layer.blobs()[0]->data().fill(0.5f);
    layer.blobs()[1]->data().fill(-2.f);
    Blob x({k.n, k.c, k.h, k.w}), y;
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
    EXPECT_EQ(layer.blobs()[0]->cdata()[3], 0.5f);
    EXPECT_EQ(layer.blobs()[1]->cdata()[0], -2.f);
  }
  {
    ConvolutionLayer layer(conv_param(k));
    layer.blobs().push_back(std::make_shared<Blob>(Shape{k.co, k.c, k.kh, k.kw}));  // ignores group
    layer.blobs().push_back(std::make_shared<Blob>(Shape{k.co}));
    Blob x({k.n, k.c, k.h, k.w}), y;
    LayerHarness h;
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error);
  }
}

TEST(ConvolutionLayer, RejectsBadConfigAndShapes) {
  auto try_setup = [](const std::string& conv, const Shape& shape) {
    ConvolutionLayer layer(layer_param(R"(name: "c" type: "Convolution" convolution_param {)" + conv + "}"));
    Blob x(shape), y;
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
  };
  const Shape ok{2, 4, 8, 8};
  EXPECT_NO_THROW(try_setup("num_output: 2 kernel_size: 3", ok));
  EXPECT_THROW(try_setup("kernel_size: 3", ok), Error);                              // no num_output
  EXPECT_THROW(try_setup("num_output: 2", ok), Error);                               // no kernel
  EXPECT_THROW(try_setup("num_output: 2 kernel_h: 3", ok), Error);                   // kernel_w missing
  EXPECT_THROW(try_setup("num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3", ok), Error);
  EXPECT_THROW(try_setup("num_output: 2 kernel_size: 3 kernel_size: 3 kernel_size: 3", ok), Error);
  EXPECT_THROW(try_setup("num_output: 2 kernel_size: 3 group: 3", ok), Error);       // 4 % 3
  EXPECT_THROW(try_setup("num_output: 3 kernel_size: 3 group: 2", ok), Error);       // 3 % 2
  EXPECT_THROW(try_setup("num_output: 2 kernel_size: 3 stride: 0", ok), Error);
  EXPECT_THROW(try_setup("num_output: 2 kernel_size: 9", ok), Error);                // larger than input
  EXPECT_THROW(try_setup("num_output: 2 kernel_size: 3 dilation: 4", ok), Error);    // extent 9 > 8
  EXPECT_THROW(try_setup("num_output: 2 kernel_size: 3", Shape{2, 4, 8}), Error);    // not 4-D
  EXPECT_THROW(try_setup("num_output: 2 kernel_size: 3 axis: 2", ok), Error);

  // Reshaping to a different channel count is an error, not silent garbage.
  ConvolutionLayer layer(layer_param(R"(name: "c" type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 })"));
  Blob x(ok), y;
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  x.reshape({2, 3, 8, 8});
  EXPECT_THROW(layer.reshape({&x}, {&y}), Error);
}

TEST(ConvolutionLayer, RejectsInPlace) {
  ConvolutionLayer layer(layer_param(R"(name: "c" type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 })"));
  Blob x({2, 4, 8, 8});
  LayerHarness h;
  EXPECT_THROW(h.setup(layer, {&x}, {&x}), Error);
}

}  // namespace coco::testing
