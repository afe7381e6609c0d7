// BF16/FP16 on a GPU against the CPU's emulation (engine/precision.h):
// cublasGemmEx, cuDNN on 16-bit tensors, InnerProduct and the CocoLoss head with a
// loss scale. Both sides read the same rounded operands and sum in fp32, in
// different orders; where a result is itself rounded to the format (cuDNN's
// outputs) an fp32 difference can move it by one unit of the format, so the
// tolerances are one such unit. Skipped without a device.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "engine/cuda_math.h"
#include "engine/math.h"
#include "engine/tensor.h"
#include "tests/cuda_parity.h"

namespace coco::testing {
namespace {

// One unit in the last place of the format, relative.
double format_ulp(Precision p) { return p == Precision::kBF16 ? 1.0 / 128 : 1.0 / 1024; }

ParityOptions at(Precision p, double rtol_units, double atol) {
  ParityOptions o;
  o.precision = p;
  o.rtol = rtol_units * format_ulp(p);
  o.atol = atol;
  return o;
}

std::vector<float> uniform(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

Tensor on_device(const std::vector<float>& v) {
  Tensor h({static_cast<int64_t>(v.size())});
  std::copy(v.begin(), v.end(), h.data());
  Tensor d(h.shape(), Device::kCUDA);
  d.copy_from(h);
  return d;
}

}  // namespace

// GEMM outputs are fp32 on both sides: only the summation order differs.
TEST(CudaPrecision, GemmAtMatchesTheEmulation) {
  COCO_REQUIRE_CUDA();
  const int64_t M = 37, N = 29, K = 301;
  const auto A = uniform(M * K, 1), B = uniform(K * N, 2), C0 = uniform(M * N, 3);
  for (Precision p : {Precision::kBF16, Precision::kFP16})
    for (Trans ta : {Trans::kNo, Trans::kYes})
      for (Trans tb : {Trans::kNo, Trans::kYes}) {
        SCOPED_TRACE(std::string(precision_name(p)) + (ta == Trans::kYes ? " At" : " A") +
                     (tb == Trans::kYes ? " Bt" : " B"));
        std::vector<float> want = C0;
        cpu_gemm_at(p, ta, tb, M, N, K, 0.75f, A.data(), B.data(), 1.f, want.data());
        Tensor a = on_device(A), b = on_device(B), c = on_device(C0);
        cuda_gemm_at(p, ta, tb, M, N, K, 0.75f, a.data(), b.data(), 1.f, c.data(), cuda::stream());
        const auto got = c.to_vector();
        for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5 * 40) << i;
      }
}

TEST(CudaPrecision, ConvolutionMatchesTheEmulation) {
  COCO_REQUIRE_CUDA();
  const std::string conv = R"(name: "conv" type: "Convolution" convolution_param { num_output: 8 kernel_size: 3
      pad: 1 stride: 2 weight_filler { type: "gaussian" std: 0.2 } bias_filler { type: "gaussian" std: 0.1 } })";
  for (Precision p : {Precision::kBF16, Precision::kFP16}) {
    SCOPED_TRACE(precision_name(p));
    expect_cuda_parity(conv, {{{3, 5, 11, 10}}}, at(p, 1.01, 2e-3));
  }
}

TEST(CudaPrecision, InnerProductMatchesTheEmulation) {
  COCO_REQUIRE_CUDA();
  const std::string ip = R"(name: "ip" type: "InnerProduct" inner_product_param { num_output: 13
      weight_filler { type: "gaussian" std: 0.2 } bias_filler { type: "gaussian" std: 0.1 } })";
  for (Precision p : {Precision::kBF16, Precision::kFP16}) {
    SCOPED_TRACE(precision_name(p));
    ParityOptions o = at(p, 0, 1e-4);
    o.rtol = 1e-4;  // fp32 results of the same rounded operands
    expect_cuda_parity(ip, {{{6, 3, 4, 5}}}, o);
  }
}

// The head: fp32 softmax statistics on logits from rounded operands, the gradient
// GEMMs on s G; at FP16 with a loss scale of 2^10.
TEST(CudaPrecision, CocoHeadMatchesTheEmulation) {
  COCO_REQUIRE_CUDA();
  for (const char* extra : {"scale: 8", "scale: 8 softmax_shift: RUNNING_MAX", "logit_type: INNER_PRODUCT"})
    for (Precision p : {Precision::kBF16, Precision::kFP16}) {
      SCOPED_TRACE(std::string(precision_name(p)) + " " + extra);
      ParityOptions o;
      o.precision = p;
      o.loss_scale = p == Precision::kFP16 ? 1024.f : 1.f;
      o.rtol = 1e-4;
      o.atol = 1e-5 * o.loss_scale;
      expect_cuda_parity(std::string("name: \"head\" type: \"CocoLoss\" bottom: \"x\" bottom: \"y\" top: \"loss\" "
                                     "coco_loss_param { num_output: 41 chunk_size: 16 ") + extra + " }",
                         {ParityBottom{{9, 24}}, ParityBottom{{9}, 41}}, o);
    }
}

}  // namespace coco::testing
