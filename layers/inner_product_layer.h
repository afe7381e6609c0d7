// InnerProduct (Caffe's): a fully connected layer. The bottom is viewed as a matrix
// (M, K) with M = product of its axes before `axis` and K = product of the rest;
// top (M-part of the shape..., num_output) = X W^T + b (X W + b when transpose).
//
// Why: one GEMM per pass over the whole batch; Caffe's layout and field names, so
// the seed's caffemodels load unchanged (weight (num_output, K), or (K, num_output)
// when transpose). CUDA: the same GEMMs with cuBLAS (engine/cuda_math.h); the bias
// enters as a rank-1 GEMM and its gradient is a GEMV with a vector of ones, so
// nothing needs a kernel of its own.
#pragma once

#include "engine/layer.h"

namespace coco {

class InnerProductLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "InnerProduct"; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;

 private:
  enum class WeightLayout { kOutByIn, kInByOut };  // (N, K) by default; (K, N) with transpose

  int64_t num_output_ = 0;  // N
  int64_t k_ = 0;           // K, fixed at setup
  int64_t m_ = 0;           // M, per reshape
  int axis_ = 1;
  bool has_bias_ = true;
  WeightLayout layout_ = WeightLayout::kOutByIn;
  // CUDA: a column of M ones (the bias as a rank-1 GEMM, its gradient as a GEMV);
  // ones_valid_ of them are set.
  Tensor ones_;
  int64_t ones_valid_ = 0;
  const float* ones_cuda();
};

}  // namespace coco
