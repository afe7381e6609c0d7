// Launchers of the SoftmaxWithLoss layer's CUDA kernels (layers/softmax_loss_layer.cu).
// Device pointers; every launch is issued on `stream` and returns without waiting.
#pragma once

#include <cstdint>

#include "engine/cuda_runtime.h"

namespace coco {

// Per-position status written by forward and read by backward.
enum : int32_t { kSoftmaxIgnored = 0, kSoftmaxValid = 1, kSoftmaxBadLabel = 2 };

// Softmax and loss. Scores z (outer, C, inner), labels (outer * inner).
//   prob (outer, C, inner)      = softmax over C (max subtracted, sum in double)
//   pos_loss (outer * inner)    = log-sum-exp - target (double), 0 unless valid
//   status (outer * inner)      = kSoftmaxIgnored / kSoftmaxValid / kSoftmaxBadLabel
//   normalizer (1 double)       = max(1, valid count) if valid_normalization, else
//                                 max(1, fixed_normalizer)
//   loss (1 float)              = sum of pos_loss (fixed order) / normalizer; NaN if
//                                 any label is bad (where the CPU path throws).
void softmax_loss_forward_cuda(float* loss, float* prob, double* pos_loss, int32_t* status, double* normalizer,
                               const float* z, const float* labels, int64_t outer, int64_t classes, int64_t inner,
                               bool has_ignore_label, int ignore_label, bool valid_normalization,
                               double fixed_normalizer, cuda::Stream stream);

// dz (outer, C, inner) (=) = (prob - onehot) * (top_diff[0] / normalizer) where
// status is valid, 0 elsewhere. top_diff and normalizer are device scalars.
void softmax_loss_backward_cuda(float* dz, const float* prob, const float* labels, const int32_t* status,
                                const float* top_diff, const double* normalizer, int64_t outer, int64_t classes,
                                int64_t inner, cuda::Stream stream);

}  // namespace coco
