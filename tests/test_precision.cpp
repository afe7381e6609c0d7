// Mixed precision on the CPU: the rounding to bf16 and fp16 (every fp16 value and
// every tie between two), the emulated GEMM, convolution and InnerProduct against
// their fp32 selves on rounded operands, the CocoLoss head against a double
// reference on rounded operands, the loss scale's plumbing through the head, and
// the dynamic loss scale's rules. The CUDA paths match these (test_cuda_precision).
#include "engine/precision.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "engine/loss_scale.h"
#include "engine/math.h"
#include "engine/proto/coco.pb.h"
#include "engine/settings.h"
#include "layers/center_loss_layer.h"
#include "layers/coco_loss_layer.h"
#include "layers/convolution_layer.h"
#include "layers/inner_product_layer.h"
#include "tests/error_of.h"
#include "tests/gradient_checker.h"

namespace coco::testing {
namespace {

float float_of(uint32_t b) {
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}

// The value of IEEE binary16 pattern h, decoded independently of round_to.
float half_value(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  double v;
  if (exp == 0)
    v = std::ldexp(frac, -24);
  else if (exp == 31)
    v = frac ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else
    v = std::ldexp(1024 + frac, exp - 25);
  return static_cast<float>(sign ? -v : v);
}

std::vector<float> uniform(size_t n, uint64_t seed, float lo = -1, float hi = 1) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

std::vector<float> rounded(Precision p, std::vector<float> v) {
  round_to(p, v.data(), v.data(), static_cast<int64_t>(v.size()));
  return v;
}

}  // namespace

TEST(Precision, Fp16KeepsEveryHalfAndRoundsEveryTieToEven) {
  for (uint32_t h = 0; h < 0x7c00; ++h) {  // the positive finite halves
    const float a = half_value(static_cast<uint16_t>(h));
    ASSERT_EQ(round_to(Precision::kFP16, a), a) << "half 0x" << std::hex << h;
    ASSERT_EQ(round_to(Precision::kFP16, -a), -a) << "half -0x" << std::hex << h;
    const float b = h + 1 < 0x7c00 ? half_value(static_cast<uint16_t>(h + 1)) : 65536.f;  // 65536: past the top
    const float mid = 0.5f * (a + b);  // exact: 12 significant bits
    const float even = (h & 1) ? b : a;
    const float up = h + 1 < 0x7c00 ? b : INFINITY;
    const float even_or_inf = (h & 1) ? up : a;
    ASSERT_EQ(round_to(Precision::kFP16, mid), even_or_inf) << "tie above half 0x" << std::hex << h;
    ASSERT_EQ(round_to(Precision::kFP16, std::nextafter(mid, 0.f)), a) << "below the tie above 0x" << std::hex << h;
    ASSERT_EQ(round_to(Precision::kFP16, std::nextafter(mid, INFINITY)), up) << "past the tie above 0x" << std::hex
                                                                             << h;
    (void)even;
  }
  EXPECT_EQ(round_to(Precision::kFP16, 65519.99f), 65504.f);
  EXPECT_EQ(round_to(Precision::kFP16, 65520.f), INFINITY);
  EXPECT_EQ(round_to(Precision::kFP16, -1e30f), -INFINITY);
  EXPECT_EQ(round_to(Precision::kFP16, 1e-30f), 0.f);
  EXPECT_TRUE(std::isnan(round_to(Precision::kFP16, NAN)));
}

TEST(Precision, Bf16RoundsEveryTieToEvenAndOverflowsToInfinity) {
  for (uint32_t k = 0; k < 0x7f80; ++k) {  // every positive finite bf16
    const float a = float_of(k << 16), b = float_of((k + 1) << 16);
    ASSERT_EQ(round_to(Precision::kBF16, a), a);
    const float mid = float_of((k << 16) | 0x8000);
    ASSERT_EQ(round_to(Precision::kBF16, mid), (k & 1) ? b : a) << "tie above bf16 0x" << std::hex << k;
    ASSERT_EQ(round_to(Precision::kBF16, float_of((k << 16) | 0x7fff)), a);
    ASSERT_EQ(round_to(Precision::kBF16, -float_of((k << 16) | 0x8001)), -b);
  }
  EXPECT_EQ(round_to(Precision::kBF16, std::numeric_limits<float>::max()), INFINITY);
  EXPECT_TRUE(std::isnan(round_to(Precision::kBF16, NAN)));
  // The array form (vectorised) gives the scalar's results, NaN included.
  std::vector<float> v = uniform(1000, 3, -1e5f, 1e5f);
  v[7] = NAN, v[8] = INFINITY, v[9] = 1e-40f;
  std::vector<float> out(v.size());
  round_to(Precision::kBF16, v.data(), out.data(), static_cast<int64_t>(v.size()));
  for (size_t i = 0; i < v.size(); ++i) {
    const float want = round_to(Precision::kBF16, v[i]);
    if (std::isnan(want))
      EXPECT_TRUE(std::isnan(out[i]));
    else
      EXPECT_EQ(out[i], want) << i;
  }
}

TEST(Precision, GemmAtIsTheFp32GemmOfRoundedOperands) {
  const int64_t M = 7, N = 5, K = 33;
  const auto A = uniform(M * K, 1), B = uniform(K * N, 2), C0 = uniform(M * N, 4);
  for (Precision p : {Precision::kBF16, Precision::kFP16}) {
    SCOPED_TRACE(precision_name(p));
    std::vector<float> got = C0, want = C0, fp32 = C0;
    cpu_gemm_at(p, Trans::kNo, Trans::kYes, M, N, K, 0.5f, A.data(), B.data(), 1.f, got.data());
    const auto Ar = rounded(p, A), Br = rounded(p, B);
    cpu_gemm(Trans::kNo, Trans::kYes, M, N, K, 0.5f, Ar.data(), Br.data(), 1.f, want.data());
    cpu_gemm(Trans::kNo, Trans::kYes, M, N, K, 0.5f, A.data(), B.data(), 1.f, fp32.data());
    EXPECT_EQ(got, want);
    EXPECT_NE(got, fp32);  // the rounding happened
  }
}

namespace {

// One layer at precision p and its fp32 twin, set up on the same bottom.
struct Twin {
  LayerHarness low, full;
  Twin(Layer& a, Layer& b, Blob& xa, Blob& ya, Blob& xb, Blob& yb, Precision p) {
    low.ctx.precision = p;
    low.setup(a, {&xa}, {&ya});
    full.setup(b, {&xb}, {&yb});
  }
};

void copy_params(const Layer& from, Layer& to, Precision round) {
  for (size_t k = 0; k < from.blobs().size(); ++k) {
    auto v = from.blobs()[k]->data().to_vector();
    if (k == 0) v = rounded(round, v);  // the weights; a bias stays fp32
    std::copy(v.begin(), v.end(), to.blobs()[k]->mutable_data());
    to.blobs()[k]->diff().zero();
  }
}

void set_values(Tensor& t, const std::vector<float>& v) { std::copy(v.begin(), v.end(), t.data()); }

}  // namespace

// x W^T + b on rounded x and W, fp32 sums; the gradients from rounded dy.
TEST(Precision, InnerProductIsItsFp32SelfOnRoundedOperands) {
  for (Precision p : {Precision::kBF16, Precision::kFP16}) {
    SCOPED_TRACE(precision_name(p));
    auto param = layer_param(R"(name: "fc" type: "InnerProduct" inner_product_param { num_output: 6
        weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "uniform" min: -1 } })");
    InnerProductLayer low(param), full(param);
    Blob xa({4, 9}), ya, xb({4, 9}), yb;
    const auto x = uniform(36, 11);
    set_values(xa.data(), x);
    set_values(xb.data(), rounded(p, x));
    Twin t(low, full, xa, ya, xb, yb, p);
    copy_params(low, full, p);
    low.blobs()[0]->diff().zero();
    low.blobs()[1]->diff().zero();
    low.forward({&xa}, {&ya});
    full.forward({&xb}, {&yb});
    EXPECT_EQ(ya.data().to_vector(), yb.data().to_vector());
    const auto dy = uniform(24, 12);
    set_values(ya.diff(), dy);
    set_values(yb.diff(), rounded(p, dy));
    low.backward({&ya}, {true}, {&xa});
    full.backward({&yb}, {true}, {&xb});
    EXPECT_EQ(xa.diff().to_vector(), xb.diff().to_vector());
    EXPECT_EQ(low.blobs()[0]->diff().to_vector(), full.blobs()[0]->diff().to_vector());
    // The bias gradient sums the unrounded dy in fp32.
    double s0 = 0;
    for (int i = 0; i < 4; ++i) s0 += dy[i * 6];
    EXPECT_FLOAT_EQ(low.blobs()[1]->diff().data()[0], static_cast<float>(s0));
  }
}

// cuDNN on 16-bit tensors: y = round(conv(round x, round w)) + b; dx and dW rounded
// results from rounded dy. Both CPU engines.
TEST(Precision, ConvolutionIsCudnnOnSixteenBitTensors) {
  for (const char* engine : {"DEFAULT", "CAFFE"})
    for (Precision p : {Precision::kBF16, Precision::kFP16}) {
      SCOPED_TRACE(std::string(engine) + " " + precision_name(p));
      const std::string body = std::string("num_output: 5 kernel_size: 3 pad: 1 stride: 2 engine: ") + engine +
                               " weight_filler { type: \"gaussian\" std: 0.3 } ";
      ConvolutionLayer low(layer_param("name: \"c\" type: \"Convolution\" convolution_param { " + body +
                                       "bias_filler { type: \"uniform\" min: -1 } }"));
      ConvolutionLayer full(layer_param("name: \"c\" type: \"Convolution\" convolution_param { " + body +
                                        "bias_term: false }"));
      Blob xa({3, 4, 9, 8}), ya, xb({3, 4, 9, 8}), yb;
      const auto x = uniform(xa.count(), 21);
      set_values(xa.data(), x);
      set_values(xb.data(), rounded(p, x));
      Twin t(low, full, xa, ya, xb, yb, p);
      const auto w = low.blobs()[0]->data().to_vector();
      set_values(full.blobs()[0]->data(), rounded(p, w));
      low.blobs()[0]->diff().zero();
      low.blobs()[1]->diff().zero();
      full.blobs()[0]->diff().zero();
      low.forward({&xa}, {&ya});
      full.forward({&xb}, {&yb});
      const auto y = ya.data().to_vector(), y_full = rounded(p, yb.data().to_vector());
      const float* b = low.blobs()[1]->cdata();
      const int64_t hw = ya.count(2), C = ya.shape(1);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], y_full[i] + b[(i / hw) % C]) << "y " << i;
      const auto dy = uniform(ya.count(), 22);
      set_values(ya.diff(), dy);
      set_values(yb.diff(), rounded(p, dy));
      low.backward({&ya}, {true}, {&xa});
      full.backward({&yb}, {true}, {&xb});
      EXPECT_EQ(xa.diff().to_vector(), rounded(p, xb.diff().to_vector()));
      EXPECT_EQ(low.blobs()[0]->diff().to_vector(), rounded(p, full.blobs()[0]->diff().to_vector()));
      double s0 = 0;
      for (int n = 0; n < 3; ++n)
        for (int64_t k = 0; k < hw; ++k) s0 += dy[n * C * hw + k];
      EXPECT_FLOAT_EQ(low.blobs()[1]->diff().data()[0], static_cast<float>(s0));
    }
}

namespace {

struct HeadRun {
  double loss;
  std::vector<float> dx, dc;
};

// A CocoLoss head (K classes, features D) on fixed data at precision p and loss scale s.
HeadRun run_head(const std::string& extra, int64_t M, int64_t D, int64_t K, Precision p, float s,
                 std::vector<float>* centroids = nullptr) {
  CocoLossLayer head(layer_param("name: \"h\" type: \"CocoLoss\" bottom: \"x\" bottom: \"y\" top: \"loss\" "
                                 "coco_loss_param { num_output: " + std::to_string(K) + " " + extra + " }"));
  Blob x({M, D}), y({M}), loss;
  y.set_element_type(ElementType::kInt32);
  set_values(x.data(), uniform(M * D, 31));
  for (int64_t i = 0; i < M; ++i) y.mutable_data_int32()[i] = static_cast<int32_t>((i * 7) % K);
  LayerHarness h;
  h.ctx.precision = p;
  h.ctx.loss_scale = s;
  h.setup(head, {&x, &y}, {&loss});
  set_values(head.blobs()[0]->data(), uniform(K * D, 32));
  if (centroids) *centroids = head.blobs()[0]->data().to_vector();
  head.blobs()[0]->diff().zero();
  head.forward({&x, &y}, {&loss});
  loss.diff().fill(s);  // the loss weight 1 times the scale, as Net::backward seeds it
  head.backward({&loss}, {true, false}, {&x, &y});
  return {loss.data().data()[0], x.diff().to_vector(), head.blobs()[0]->diff().to_vector()};
}

// The loss in double from the operands the head's GEMM reads: f = alpha x/|x| and
// the centroid rows, each rounded to p; `raw_rows`: the fixed shift's z = f·round(c)
// / |c|; else the running maximum's z = f·round(c/|c|).
double reference_loss(const std::vector<float>& x, const std::vector<float>& c, int64_t M, int64_t D, int64_t K,
                      float alpha, Precision p, bool raw_rows) {
  double total = 0;
  for (int64_t i = 0; i < M; ++i) {
    double xn = 0;
    for (int64_t d = 0; d < D; ++d) xn += double(x[i * D + d]) * x[i * D + d];
    const float inv = 1.f / std::sqrt(static_cast<float>(xn));
    std::vector<double> z(K);
    for (int64_t k = 0; k < K; ++k) {
      double cn = 0;
      for (int64_t d = 0; d < D; ++d) cn += double(c[k * D + d]) * c[k * D + d];
      const double cinv = 1 / std::sqrt(cn);
      double dot = 0;
      for (int64_t d = 0; d < D; ++d) {
        const float f = round_to(p, alpha * (x[i * D + d] * inv));
        const float u = raw_rows ? round_to(p, c[k * D + d]) : round_to(p, static_cast<float>(c[k * D + d] * cinv));
        dot += double(f) * u;
      }
      z[k] = raw_rows ? dot * cinv : dot;
    }
    double mx = z[0], sum = 0;
    for (double v : z) mx = std::max(mx, v);
    for (double v : z) sum += std::exp(v - mx);
    total += std::log(sum) + mx - z[(i * 7) % K];
  }
  return total / M;
}

}  // namespace

TEST(Precision, CocoHeadLossIsTheSoftmaxOfRoundedOperands) {
  const int64_t M = 6, D = 24, K = 37;
  std::vector<float> c;
  const auto x = uniform(M * D, 31);
  for (Precision p : {Precision::kBF16, Precision::kFP16})
    for (bool fixed : {true, false}) {
      SCOPED_TRACE(std::string(precision_name(p)) + (fixed ? " fixed shift" : " running max"));
      const std::string extra = std::string("scale: 8 chunk_size: 10 ") + (fixed ? "" : "softmax_shift: RUNNING_MAX");
      const HeadRun r = run_head(extra, M, D, K, p, 1.f, &c);
      const double want = reference_loss(x, c, M, D, K, 8.f, p, fixed);
      const double fp32 = reference_loss(x, c, M, D, K, 8.f, Precision::kFP32, fixed);
      // The head's float sums hold about 1e-7 of the loss; the rounding moves it by
      // 1e-6 (FP16) to 1e-3 (BF16).
      const double tol = 1.2e-7 * std::fabs(want);
      EXPECT_NEAR(r.loss, want, tol);
      EXPECT_GT(std::fabs(want - fp32), 10 * tol);  // the rounding shows
    }
}

// The loss scale s enters the head's gradient GEMMs as s G and leaves as 1/s: at
// BF16 (fp32's range) the gradients are s times those at scale 1, bit for bit.
// At FP16 the scale is what keeps small softmax terms: with K = 16384 classes each
// p/M lies below fp16's normal range, and the gradient at s = 1 is visibly further
// from the fp32 one than at s = 2^16.
TEST(Precision, HeadGradientsCarryTheLossScale) {
  const int64_t M = 16, D = 32;
  const HeadRun one = run_head("scale: 8", M, D, 50, Precision::kBF16, 1.f);
  const HeadRun big = run_head("scale: 8", M, D, 50, Precision::kBF16, 1024.f);
  EXPECT_EQ(big.loss, one.loss);
  ASSERT_EQ(big.dx.size(), one.dx.size());
  for (size_t i = 0; i < one.dx.size(); ++i) ASSERT_EQ(big.dx[i], 1024.f * one.dx[i]) << i;
  for (size_t i = 0; i < one.dc.size(); ++i) ASSERT_EQ(big.dc[i], 1024.f * one.dc[i]) << i;

  const int64_t K = 16384;
  const HeadRun ref = run_head("scale: 8", M, D, K, Precision::kFP32, 1.f);
  // Over the rows of classes no sample belongs to, whose gradients are all small.
  auto error = [&](const HeadRun& r, float s) {
    double e = 0, n = 0;
    for (int64_t k = 0; k < K; ++k) {
      if (k % 7 == 0 && k / 7 < M) continue;  // a label: (i * 7) % K
      for (int64_t d = 0; d < D; ++d) {
        e += std::pow(r.dc[k * D + d] / s - ref.dc[k * D + d], 2);
        n += std::pow(ref.dc[k * D + d], 2);
      }
    }
    return std::sqrt(e / n);
  };
  const double unscaled = error(run_head("scale: 8", M, D, K, Precision::kFP16, 1.f), 1.f);
  const double scaled = error(run_head("scale: 8", M, D, K, Precision::kFP16, 65536.f), 65536.f);
  EXPECT_LT(scaled, 2e-3);
  EXPECT_GT(unscaled, 5 * scaled) << "scaled " << scaled;
}

// CenterLoss's SEED centre step does not read the top diff, so the loss scale is
// applied to it directly: at scale 1024 every gradient is 1024 times scale 1's.
TEST(Precision, CenterLossSeedStepCarriesTheLossScale) {
  std::vector<std::vector<float>> dc, dx;
  for (float s : {1.f, 1024.f}) {
    CenterLossLayer layer(layer_param(R"(name: "c" type: "CenterLoss" bottom: "x" bottom: "y" top: "l"
        center_loss_param { num_output: 4 center_filler { type: "gaussian" } })"));
    Blob x({6, 3}), y({6}), l;
    set_values(x.data(), uniform(18, 41));
    for (int i = 0; i < 6; ++i) y.mutable_data()[i] = static_cast<float>(i % 4);
    LayerHarness h;
    h.ctx.loss_scale = s;
    h.setup(layer, {&x, &y}, {&l});
    layer.blobs()[0]->diff().zero();
    layer.forward({&x, &y}, {&l});
    l.diff().fill(s);
    layer.backward({&l}, {true, false}, {&x, &y});
    dc.push_back(layer.blobs()[0]->diff().to_vector());
    dx.push_back(x.diff().to_vector());
  }
  for (size_t i = 0; i < dc[0].size(); ++i) ASSERT_EQ(dc[1][i], 1024.f * dc[0][i]) << i;
  for (size_t i = 0; i < dx[0].size(); ++i) ASSERT_EQ(dx[1][i], 1024.f * dx[0][i]) << i;
}

TEST(DynamicLossScale, HalvesOnOverflowDoublesAfterTheWindowAndTravelsInTheState) {
  DynamicLossScale s(1024, 3);
  EXPECT_TRUE(s.back_off());
  EXPECT_EQ(s.value(), 512);
  s.grow();
  s.grow();
  EXPECT_EQ(s.value(), 512);
  s.grow();
  EXPECT_EQ(s.value(), 1024);
  s.grow();
  EXPECT_TRUE(s.back_off());  // resets the run of good steps
  s.grow();
  s.grow();
  EXPECT_EQ(s.value(), 512);
  proto::SolverState st;
  s.save(&st);
  DynamicLossScale t(65536, 3);
  t.restore(st, "ckpt");
  EXPECT_EQ(t.value(), 512);
  EXPECT_EQ(t.skipped(), 2);
  t.grow();  // the third good step in a row, counting the two saved
  EXPECT_EQ(t.value(), 1024);

  DynamicLossScale floor(2, 5);
  EXPECT_TRUE(floor.back_off());
  EXPECT_FALSE(floor.back_off());  // at 1 an overflow is not the scale's
  EXPECT_EQ(floor.value(), 1);

  st.set_loss_scale(3);
  EXPECT_NE(error_of([&] { t.restore(st, "ckpt"); }).find("ckpt: the loss scale state (3"), std::string::npos);
}

TEST(Precision, SolverSettingsAreChecked) {
  auto check = [](const std::string& text) {
    proto::SolverParameter p;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &p)) << text;
    return error_of([&] { validate_solver(p, "s.prototxt"); });
  };
  EXPECT_EQ(check("base_lr: 0.1 precision: FP16 loss_scale: 1024 loss_scale_window: 10"), kNoError);
  EXPECT_EQ(check("base_lr: 0.1 precision: BF16"), kNoError);
  EXPECT_NE(check("base_lr: 0.1 precision: FP16 loss_scale: 1000").find("loss_scale = 1000 is not allowed: a power "
                                                                        "of two"),
            std::string::npos);
  EXPECT_NE(check("base_lr: 0.1 precision: BF16 loss_scale: 1024").find("set only with precision: FP16"),
            std::string::npos);
  EXPECT_NE(check("base_lr: 0.1 precision: FP16 loss_scale_window: 0").find("loss_scale_window = 0"),
            std::string::npos);
}

}  // namespace coco::testing
