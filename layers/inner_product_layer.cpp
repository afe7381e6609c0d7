#include "layers/inner_product_layer.h"

#include <algorithm>

#include "engine/common.h"
#include "engine/filler.h"
#include "engine/math.h"

#if COCO_WITH_CUDA
#include "engine/cuda_math.h"
#endif

namespace coco {

void InnerProductLayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) {
  const auto& p = param_.inner_product_param();
  const std::string w = where();
  if (!p.has_num_output() || p.num_output() == 0) COCO_THROW(w, "num_output must be set and positive");
  num_output_ = p.num_output();
  has_bias_ = p.bias_term();
  layout_ = p.transpose() ? WeightLayout::kInByOut : WeightLayout::kOutByIn;
  const int naxes = bottom[0]->num_axes();
  if (p.axis() < -naxes || p.axis() >= naxes)
    COCO_THROW(w, "axis ", p.axis(), " is out of range for a bottom of shape ", shape_str(bottom[0]->shape()));
  axis_ = bottom[0]->canonical_axis(p.axis());
  k_ = bottom[0]->count(axis_);
  if (k_ == 0) COCO_THROW(w, "bottom ", shape_str(bottom[0]->shape()), " has no inputs after axis ", axis_);

  const Shape wshape = layout_ == WeightLayout::kOutByIn ? Shape{num_output_, k_} : Shape{k_, num_output_};
  std::vector<ParamDecl> decls{{"weight", wshape, &p.weight_filler()}};
  if (has_bias_) decls.push_back({"bias", {num_output_}, &p.bias_filler()});
  init_params(decls, rng);
}

void InnerProductLayer::reshape(const Blobs& bottom, const Blobs& top) {
  const Blob& x = *bottom[0];
  if (top[0] == bottom[0]) COCO_THROW(where(), "cannot run in place");
  if (x.num_axes() <= axis_)
    COCO_THROW(where(), "bottom ", shape_str(x.shape()), " has no axis ", axis_);
  if (x.count(axis_) != k_)
    COCO_THROW(where(), "bottom ", shape_str(x.shape()), " has ", x.count(axis_), " inputs per sample after axis ",
               axis_, "; the layer was set up for ", k_);
  m_ = x.count(0, axis_);
  // The ones only grow (a smaller batch uses their first M).
  if (x.device() == Device::kCUDA && has_bias_ && (ones_.device() != Device::kCUDA || ones_.count() < m_)) {
    ones_.set_device(Device::kCUDA);
    ones_.reshape({m_});
    ones_valid_ = 0;
  }
  Shape out(x.shape().begin(), x.shape().begin() + axis_);
  out.push_back(num_output_);
  top[0]->reshape(out);
}

// top (M, N) = X (M, K) * W^T (+ b).
void InnerProductLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  const float* x = bottom[0]->cdata();
  const float* wt = blobs_[0]->cdata();
  float* y = top[0]->mutable_data();
  const Trans tw = layout_ == WeightLayout::kOutByIn ? Trans::kYes : Trans::kNo;
  const int64_t M = m_, N = num_output_;
  if (has_bias_) {
    const float* b = blobs_[1]->cdata();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i) std::copy(b, b + N, y + i * N);
  }
  cpu_gemm_at(ctx().precision, Trans::kNo, tw, M, N, k_, 1.f, x, wt, has_bias_ ? 1.f : 0.f, y);
}

// weight diff += dY^T X (or X^T dY), bias diff += column sums of dY, bottom diff = dY W.
void InnerProductLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                                     const Blobs& bottom) {
  const float* dy = top[0]->cdiff();
  const float* x = bottom[0]->cdata();
  const int64_t M = m_, N = num_output_, K = k_;
  const Precision p = ctx().precision;  // the bias sums stay fp32 (as on cuDNN's and cuBLAS's side)
  float* dw = blobs_[0]->mutable_diff();
  if (layout_ == WeightLayout::kOutByIn)
    cpu_gemm_at(p, Trans::kYes, Trans::kNo, N, K, M, 1.f, dy, x, 1.f, dw);  // (N, K)
  else
    cpu_gemm_at(p, Trans::kYes, Trans::kNo, K, N, M, 1.f, x, dy, 1.f, dw);  // (K, N)
  if (has_bias_) {
    float* db = blobs_[1]->mutable_diff();
    // Each thread owns blocks of columns and sums their rows in order: deterministic.
    constexpr int64_t kBlock = 256;
#pragma omp parallel for schedule(static)
    for (int64_t j0 = 0; j0 < N; j0 += kBlock) {
      const int64_t j1 = std::min(N, j0 + kBlock);
      double acc[kBlock] = {};
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = j0; j < j1; ++j) acc[j - j0] += dy[i * N + j];
      for (int64_t j = j0; j < j1; ++j) db[j] += static_cast<float>(acc[j - j0]);
    }
  }
  if (propagate_down[0]) {
    const Trans tw = layout_ == WeightLayout::kOutByIn ? Trans::kNo : Trans::kYes;
    cpu_gemm_at(p, Trans::kNo, tw, M, K, N, 1.f, dy, blobs_[0]->cdata(), 0.f, bottom[0]->mutable_diff());
  }
}

#if COCO_WITH_CUDA
const float* InnerProductLayer::ones_cuda() {
  if (ones_valid_ < ones_.count()) {
    cuda_set(ones_.count(), 1.0f, ones_.data(), cuda::stream());
    ones_valid_ = ones_.count();
  }
  return ones_.data();
}

// top (M, N) = ones (M, 1) * b (1, N), then += X W^T: the CPU's order (bias first).
void InnerProductLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  const Trans tw = layout_ == WeightLayout::kOutByIn ? Trans::kYes : Trans::kNo;
  const int64_t M = m_, N = num_output_;
  float* y = top[0]->mutable_data();
  if (has_bias_) cuda_gemm(Trans::kNo, Trans::kNo, M, N, 1, 1.f, ones_cuda(), blobs_[1]->cdata(), 0.f, y, cuda::stream());
  cuda_gemm_at(ctx().precision, Trans::kNo, tw, M, N, k_, 1.f, bottom[0]->cdata(), blobs_[0]->cdata(),
               has_bias_ ? 1.f : 0.f, y, cuda::stream());
}

void InnerProductLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down,
                                      const Blobs& bottom) {
  const float* dy = top[0]->cdiff();
  const float* x = bottom[0]->cdata();
  const int64_t M = m_, N = num_output_, K = k_;
  const Precision p = ctx().precision;  // the bias sums stay fp32 (as on cuDNN's and cuBLAS's side)
  float* dw = blobs_[0]->mutable_diff();
  if (layout_ == WeightLayout::kOutByIn)
    cuda_gemm_at(p, Trans::kYes, Trans::kNo, N, K, M, 1.f, dy, x, 1.f, dw, cuda::stream());  // (N, K) +=
  else
    cuda_gemm_at(p, Trans::kYes, Trans::kNo, K, N, M, 1.f, x, dy, 1.f, dw, cuda::stream());  // (K, N) +=
  // bias diff (N) += dY^T (N, M) * ones (M).
  if (has_bias_) cuda_gemv(Trans::kYes, M, N, 1.f, dy, ones_cuda(), 1.f, blobs_[1]->mutable_diff(), cuda::stream());
  if (propagate_down[0]) {
    const Trans tw = layout_ == WeightLayout::kOutByIn ? Trans::kNo : Trans::kYes;
    cuda_gemm_at(p, Trans::kNo, tw, M, K, N, 1.f, dy, blobs_[0]->cdata(), 0.f, bottom[0]->mutable_diff(),
                 cuda::stream());
  }
}
#else
COCO_CUDA_STUBS(InnerProductLayer)
#endif

}  // namespace coco
