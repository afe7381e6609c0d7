#include "layers/pooling_layer.h"

#include <algorithm>
#include <cfloat>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "engine/common.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

namespace {

struct PoolCase {
  std::string text;  // pooling_param body
  int64_t n, c, h, w;
  int64_t ho, wo;        // expected output size (worked out by hand from Caffe's rules)
  int64_t kh, kw, sh, sw, ph, pw;
};

// Distinct values, at least 0.05 apart, in shuffled order: no ties within the
// gradient checker's step, so max pooling is differentiable at every input.
void fill_distinct(Blob& b, uint64_t seed) {
  std::vector<int64_t> v(b.count());
  std::iota(v.begin(), v.end(), 0);
  std::shuffle(v.begin(), v.end(), std::mt19937_64(seed));
  for (int64_t i = 0; i < b.count(); ++i) b.mutable_data()[i] = 0.05f * (v[i] - b.count() / 2);
}

// The definition, written per output: the window covers padded rows
// [oh*sh - ph, oh*sh - ph + kh) clipped to [-ph, H + ph); MAX looks at the image
// pixels in it, AVE sums them and divides by the clipped window's full size.
std::vector<float> reference(const PoolCase& k, bool is_max, const Blob& x) {
  std::vector<float> y(k.n * k.c * k.ho * k.wo);
  for (int64_t p = 0; p < k.n * k.c; ++p)
    for (int64_t oh = 0; oh < k.ho; ++oh)
      for (int64_t ow = 0; ow < k.wo; ++ow) {
        double best = -1e30, sum = 0;
        int64_t padded_count = 0;
        for (int64_t h = -k.ph; h < k.h + k.ph; ++h)
          for (int64_t w = -k.pw; w < k.w + k.pw; ++w) {
            const bool in_window = h >= oh * k.sh - k.ph && h < oh * k.sh - k.ph + k.kh &&
                                   w >= ow * k.sw - k.pw && w < ow * k.sw - k.pw + k.kw;
            if (!in_window) continue;
            ++padded_count;
            if (h < 0 || h >= k.h || w < 0 || w >= k.w) continue;
            const float v = x.cdata()[(p * k.h + h) * k.w + w];
            best = std::max<double>(best, v);
            sum += v;
          }
        y[(p * k.ho + oh) * k.wo + ow] = is_max ? static_cast<float>(best) : static_cast<float>(sum / padded_count);
      }
  return y;
}

const std::vector<PoolCase> kCases = {
    // CEIL: ceil((7-3)/2)+1 = 3; ceil((6-3)/2)+1 = 3 (last window hangs over the edge).
    {"kernel_size: 3 stride: 2", 2, 3, 7, 6, 3, 3, 3, 3, 2, 2, 0, 0},
    // pad 1: ceil((5+2-2)/2)+1 = 4, but window 3 would start at 6-1 = 5 >= H: 3.
    {"kernel_size: 2 stride: 2 pad: 1", 2, 2, 5, 5, 3, 3, 2, 2, 2, 2, 1, 1},
    // pad 1, k 3, s 2 on 6x7: h: ceil(5/2)+1 = 4 (start 6-1=5 < 7 ok); w: ceil(6/2)+1 = 4.
    {"kernel_size: 3 stride: 2 pad: 1", 1, 2, 6, 7, 4, 4, 3, 3, 2, 2, 1, 1},
    // non-square everything, batch of 1: h: ceil((5+2-2)/1)+1 = 6, (6-1)*1 >= 5+1? no;
    // w: ceil((7-3)/2)+1 = 3.
    {"kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 0", 1, 3, 5, 7, 6, 3, 2, 3, 1, 2, 1, 0},
    // FLOOR: floor((6-3)/2)+1 = 2.
    {"kernel_size: 3 stride: 2 round_mode: FLOOR", 2, 2, 6, 6, 2, 2, 3, 3, 2, 2, 0, 0},
    // global pooling: the whole plane.
    {"global_pooling: true", 3, 2, 4, 5, 1, 1, 4, 5, 1, 1, 0, 0},
};

PoolingLayer make(const PoolCase& k, const char* method) {
  return PoolingLayer(layer_param(std::string(R"(name: "pool" type: "Pooling" pooling_param { pool: )") + method +
                                  " " + k.text + " }"));
}

}  // namespace

TEST(PoolingLayer, ForwardMatchesDefinition) {
  for (const char* method : {"MAX", "AVE"}) {
    for (size_t ci = 0; ci < kCases.size(); ++ci) {
      const PoolCase& k = kCases[ci];
      SCOPED_TRACE(std::string(method) + " case " + std::to_string(ci));
      PoolingLayer layer = make(k, method);
      Blob x({k.n, k.c, k.h, k.w}), y;
      fill_uniform(x, -1, 1, 5 + ci);
      LayerHarness h;
      h.setup(layer, {&x}, {&y});
      ASSERT_EQ(y.shape(), (Shape{k.n, k.c, k.ho, k.wo}));
      layer.forward({&x}, {&y});
      const auto ref = reference(k, std::string(method) == "MAX", x);
      for (int64_t i = 0; i < y.count(); ++i) EXPECT_NEAR(y.cdata()[i], ref[i], 1e-6) << i;
    }
  }
}

TEST(PoolingLayer, AveragePaddedCornerDividesByPaddedWindow) {
  // 1x1x2x2 input of ones, kernel 2, stride 1, pad 1: out 3x3; the corner window
  // holds one pixel and three padding cells, so it averages to 1/4 (Caffe).
  PoolingLayer layer(layer_param(R"(name: "p" type: "Pooling" pooling_param { pool: AVE kernel_size: 2 stride: 1 pad: 1 })"));
  Blob x({1, 1, 2, 2}), y;
  x.data().fill(1.f);
  LayerHarness h;
  h.setup(layer, {&x}, {&y});
  layer.forward({&x}, {&y});
  ASSERT_EQ(y.shape(), (Shape{1, 1, 3, 3}));
  EXPECT_FLOAT_EQ(y.cdata()[0], 0.25f);
  EXPECT_FLOAT_EQ(y.cdata()[1], 0.5f);
  EXPECT_FLOAT_EQ(y.cdata()[4], 1.f);
}

TEST(PoolingLayer, GradientCheck) {
  for (const char* method : {"MAX", "AVE"}) {
    for (size_t ci = 0; ci < kCases.size(); ++ci) {
      const PoolCase& k = kCases[ci];
      SCOPED_TRACE(std::string(method) + " case " + std::to_string(ci));
      PoolingLayer layer = make(k, method);
      Blob x({k.n, k.c, k.h, k.w}), y;
      fill_distinct(x, 31 + ci);
      LayerHarness h;
      h.setup(layer, {&x}, {&y});
      GradientChecker().check(layer, {&x}, {&y});
    }
  }
}

// The bottom diff is written, not accumulated; inputs no window reaches get 0.
TEST(PoolingLayer, BackwardWritesBottomDiff) {
  for (const char* method : {"MAX", "AVE"}) {
    const PoolCase& k = kCases[4];  // FLOOR: the last row and column are never pooled
    PoolingLayer layer = make(k, method);
    Blob x({k.n, k.c, k.h, k.w}), y;
    fill_distinct(x, 3);
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
    layer.forward({&x}, {&y});
    y.diff().fill(1.f);
    x.diff().fill(42.f);
    layer.backward({&y}, {true}, {&x});
    for (int64_t p = 0; p < k.n * k.c; ++p)
      for (int64_t i = 0; i < k.w; ++i) EXPECT_EQ(x.cdiff()[(p * k.h + k.h - 1) * k.w + i], 0.f);
    double total = 0;
    for (int64_t i = 0; i < x.count(); ++i) total += x.cdiff()[i];
    EXPECT_NEAR(total, y.count(), 1e-4);  // each top gradient lands (spread) exactly once
  }
}

TEST(PoolingLayer, RejectsBadConfigAndShapes) {
  auto try_setup = [](const std::string& pool, const Shape& shape) {
    PoolingLayer layer(layer_param(R"(name: "p" type: "Pooling" pooling_param {)" + pool + "}"));
    Blob x(shape), y;
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
  };
  const Shape ok{2, 3, 6, 6};
  EXPECT_NO_THROW(try_setup("kernel_size: 2 stride: 2", ok));
  EXPECT_THROW(try_setup("pool: STOCHASTIC kernel_size: 2", ok), Error);
  EXPECT_THROW(try_setup("stride: 2", ok), Error);                                  // no kernel
  EXPECT_THROW(try_setup("kernel_h: 2", ok), Error);                                // kernel_w missing
  EXPECT_THROW(try_setup("kernel_size: 2 kernel_h: 2 kernel_w: 2", ok), Error);
  EXPECT_THROW(try_setup("global_pooling: true kernel_size: 2", ok), Error);
  EXPECT_THROW(try_setup("global_pooling: true stride: 2", ok), Error);
  EXPECT_THROW(try_setup("kernel_size: 2 pad: 2", ok), Error);                      // pad >= kernel
  EXPECT_THROW(try_setup("kernel_size: 2 stride: 0", ok), Error);
  EXPECT_THROW(try_setup("kernel_size: 2 pad: 1 pad_h: 1 pad_w: 1", ok), Error);
  EXPECT_THROW(try_setup("kernel_size: 7", ok), Error);                             // larger than input
  EXPECT_THROW(try_setup("kernel_size: 2", Shape{2, 3, 6}), Error);                 // not 4-D
}

TEST(PoolingLayer, RejectsInPlace) {
  PoolingLayer layer(layer_param(R"(name: "p" type: "Pooling" pooling_param { kernel_size: 2 })"));
  Blob x({2, 3, 6, 6});
  LayerHarness h;
  EXPECT_THROW(h.setup(layer, {&x}, {&x}), Error);
}

}  // namespace coco::testing
