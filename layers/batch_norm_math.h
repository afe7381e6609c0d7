// Batch-normalisation math shared by BatchNorm (Caffe's) and BN (the seed's fused
// layer): per-channel statistics, normalisation and the input gradient, and
// BatchNormCore, the state both layers keep from forward to backward.
//
// Why one place: the two layers differ only in how they keep running statistics
// and whether a learned scale/shift follows, so the normalisation itself (and its
// gradient, the part that is easy to get subtly wrong) is written once. Data is
// viewed as (N, C, S) with S the product of the axes after the channel axis.
// Statistics are accumulated in double, one channel per thread, so results do not
// depend on the thread count.
#pragma once

#include <cstdint>

#include "engine/cuda_runtime.h"
#include "engine/tensor.h"

namespace coco {

// A bottom seen as (N, C, S): channels on axis 1 (one channel for a 1-axis
// bottom, as in Caffe), S the product of the axes after it.
struct BnDims {
  int64_t N = 0, C = 0, S = 0;
};
BnDims bn_dims(const Shape& shape);

// Where the mean and variance used by a forward came from.
enum class BnStats {
  kBatch,   // this batch's statistics: the gradient flows through them
  kGlobal,  // stored (running) statistics: constants for the gradient
};

// Per-channel mean and biased variance (divide by N*S) of x (N, C, S).
void bn_batch_stats(const float* x, int64_t N, int64_t C, int64_t S, float* mean /* (C) */,
                    float* var /* (C) */);

// inv_std (C) = 1 / sqrt(var + eps).
void bn_inv_std(const float* var, int64_t C, float eps, float* inv_std);

// x_hat (N, C, S) = (x - mean) * inv_std; x_hat may be x.
void bn_normalize(const float* x, const float* mean, const float* inv_std, int64_t N, int64_t C,
                  int64_t S, float* x_hat);

// Per-channel sums over N and S of dy and of dy * x_hat (the gradients of a
// per-channel shift and scale applied after the normalisation).
void bn_grad_sums(const float* dy, const float* x_hat, int64_t N, int64_t C, int64_t S,
                  float* sum_dy /* (C) */, float* sum_dy_xhat /* (C) */);

// dx (N, C, S) = gradient of the loss with respect to the layer input, written (=),
// for y = gamma * x_hat (+ shift). gamma (C) may be null (gamma = 1). sum_dy and
// sum_dy_xhat come from bn_grad_sums (only read for kBatch). dx may alias dy.
//   kBatch:  dx = gamma * inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat))
//   kGlobal: dx = gamma * inv_std * dy
void bn_backward_input(BnStats stats, const float* dy, const float* x_hat, const float* inv_std,
                       const float* gamma, const float* sum_dy, const float* sum_dy_xhat,
                       int64_t N, int64_t C, int64_t S, float* dx);

// What a batch-norm layer keeps between forward and backward, and the steps both
// layers take. Forward: fill mean()/var() (batch_stats(), or copy stored ones),
// then normalize(). Backward: grad_sums(), then backward_input(). x_hat is kept
// (not read back from the top), so a later in-place layer may overwrite the top.
class BatchNormCore {
 public:
  // Puts the kept state on `dev` (the bottom's device); call before reshape(). The
  // pointers below are then device pointers.
  void set_device(Device dev);
  void reshape(const Shape& bottom_shape);
  float* mean() { return mean_.data(); }  // (C) statistics the next normalize() uses
  float* var() { return var_.data(); }    // (C)
  void batch_stats(const float* x) { bn_batch_stats(x, d_.N, d_.C, d_.S, mean(), var()); }
  // x_hat = (x - mean) / sqrt(var + eps); `used` says where mean/var came from.
  void normalize(const float* x, BnStats used, float eps);
  const float* x_hat() const { return x_hat_.data(); }  // (N, C, S)
  const BnDims& dims() const { return d_; }
  BnStats used() const { return used_; }  // what the last normalize() was told
  // Per-channel sums of dy and dy * x_hat over the last forward's batch.
  void grad_sums(const float* dy);
  const float* sum_dy() const { return sum_dy_.data(); }            // (C)
  const float* sum_dy_xhat() const { return sum_dy_xhat_.data(); }  // (C)
  // dx (=) for y = gamma * x_hat (+ shift); gamma may be null. grad_sums() first.
  void backward_input(const float* dy, const float* gamma, float* dx) const;

  // The same steps on the device (layers/batch_norm_cuda.h), on `stream`; every
  // pointer is a device pointer. mean()/var() must be filled on the device first.
  // Defined in a CUDA build only (its layers' CUDA paths call them).
  void batch_stats_cuda(const float* x, cuda::Stream stream);
  // As normalize(); y (may be null, may be x) also gets x_hat.
  void normalize_cuda(const float* x, BnStats used, float eps, float* y, cuda::Stream stream);
  // As normalize(), then y = scale * x_hat + shift per channel (the BN layer).
  void normalize_affine_cuda(const float* x, BnStats used, float eps, const float* scale, const float* shift,
                             float* y, cuda::Stream stream);
  void grad_sums_cuda(const float* dy, cuda::Stream stream);
  void backward_input_cuda(const float* dy, const float* gamma, float* dx, cuda::Stream stream) const;

 private:
  BnDims d_;
  BnStats used_ = BnStats::kBatch;  // what the last forward used (backward follows it)
  Tensor mean_, var_, inv_std_;     // (C)
  Tensor x_hat_;                    // (N, C, S)
  Tensor sum_dy_, sum_dy_xhat_;     // (C)
};

}  // namespace coco
