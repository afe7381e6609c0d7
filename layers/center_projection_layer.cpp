#include "layers/center_projection_layer.h"

#include <cmath>

#include "engine/common.h"
#include "engine/norm.h"
#include "engine/filler.h"
#include "engine/math.h"
#if COCO_WITH_CUDA
#include "engine/cuda_math.h"
#include "layers/center_projection_cuda.h"
#endif

namespace coco {

namespace {
}

void CenterProjectionLayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) {
  const auto& cp = param_.center_projection_param();
  num_output_ = cp.num_output();
  if (num_output_ < 1) COCO_THROW(where(), "center_projection_param.num_output must be >= 1");
  bias_term_ = cp.bias_term();
  scale_ = cp.scale();
  if (!std::isfinite(scale_)) COCO_THROW(where(), "center_projection_param.scale must be finite");
  if (bottom[0]->num_axes() < 2 || bottom[0]->count(1) < 1)
    COCO_THROW(where(), "bottom must be (N, D...) with D >= 1, got ", shape_str(bottom[0]->shape()));
  dim_ = bottom[0]->count(1);
  std::vector<ParamDecl> decls{{"weight", {num_output_, dim_}, &cp.weight_filler()}};
  if (bias_term_) decls.push_back({"bias", {num_output_}, &cp.bias_filler()});
  init_params(decls, rng);
}

void CenterProjectionLayer::reshape(const Blobs& bottom, const Blobs& top) {
  if (bottom[0]->num_axes() < 2 || bottom[0]->count(1) != dim_)
    COCO_THROW(where(), "bottom ", shape_str(bottom[0]->shape()), " must be (N, D...) with D = ", dim_,
               " (the weight's input dimension)");
  top[0]->reshape({bottom[0]->shape(0), num_output_});
}

void CenterProjectionLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  const int64_t n = bottom[0]->shape(0), k = num_output_, d = dim_;
  float* w = blobs_[0]->mutable_data();  // (K, D), rewritten to unit rows
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < k; ++j) {
    float* wj = w + j * d;
    const double ss = cpu_dot_double(d, wj, wj);
    const float s = static_cast<float>(1.0 / std::sqrt(ss + kNormEpsilon));
    for (int64_t c = 0; c < d; ++c) wj[c] *= s;
  }
  const float* x = bottom[0]->cdata();  // (N, D)
  float* y = top[0]->mutable_data();    // (N, K)
  if (n == 0) return;
  cpu_gemm(Trans::kNo, Trans::kYes, n, k, d, scale_, x, w, 0.0f, y);
  if (bias_term_) {
    const float* b = blobs_[1]->cdata();  // (K)
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j) y[i * k + j] += b[j];
  }
}

void CenterProjectionLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                                         const Blobs& bottom) {
  const int64_t n = bottom[0]->shape(0), k = num_output_, d = dim_;
  if (n == 0) return;
  const float* dy = top[0]->cdiff();    // (N, K)
  const float* x = bottom[0]->cdata();  // (N, D)
  // weight diff (K, D) += scale * dYᵀ x
  cpu_gemm(Trans::kYes, Trans::kNo, k, d, n, scale_, dy, x, 1.0f, blobs_[0]->mutable_diff());
  if (bias_term_) {
    float* db = blobs_[1]->mutable_diff();  // (K) += column sums of dY
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < k; ++j) {
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += dy[i * k + j];
      db[j] += static_cast<float>(s);
    }
  }
  if (propagate_down[0])  // bottom diff (N, D) = scale * dY w
    cpu_gemm(Trans::kNo, Trans::kNo, n, d, k, scale_, dy, blobs_[0]->cdata(), 0.0f, bottom[0]->mutable_diff());
}

#if COCO_WITH_CUDA
// The CPU path's steps on the device: renormalise, GEMM, bias.
void CenterProjectionLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  const int64_t n = bottom[0]->shape(0), k = num_output_, d = dim_;
  float* w = blobs_[0]->mutable_data();  // (K, D), rewritten to unit rows
  center_projection_renormalize_cuda(w, k, d, cuda::stream());
  if (n == 0) return;
  float* y = top[0]->mutable_data();  // (N, K)
  cuda_gemm(Trans::kNo, Trans::kYes, n, k, d, scale_, bottom[0]->cdata(), w, 0.0f, y, cuda::stream());
  if (bias_term_) center_projection_add_bias_cuda(y, blobs_[1]->cdata(), n, k, cuda::stream());
}

void CenterProjectionLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down,
                                          const Blobs& bottom) {
  const int64_t n = bottom[0]->shape(0), k = num_output_, d = dim_;
  if (n == 0) return;
  const float* dy = top[0]->cdiff();  // (N, K)
  // weight diff (K, D) += scale * dYᵀ x
  cuda_gemm(Trans::kYes, Trans::kNo, k, d, n, scale_, dy, bottom[0]->cdata(), 1.0f, blobs_[0]->mutable_diff(), cuda::stream());
  if (bias_term_) center_projection_bias_grad_cuda(blobs_[1]->mutable_diff(), dy, n, k, cuda::stream());
  if (propagate_down[0])  // bottom diff (N, D) = scale * dY w
    cuda_gemm(Trans::kNo, Trans::kNo, n, d, k, scale_, dy, blobs_[0]->cdata(), 0.0f, bottom[0]->mutable_diff(), cuda::stream());
}
#else
COCO_CUDA_STUBS(CenterProjectionLayer)
#endif

}  // namespace coco
