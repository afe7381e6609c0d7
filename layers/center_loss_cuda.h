// Launchers of the CenterLoss layer's CUDA kernels (layers/center_loss_layer.cu).
// Device pointers; every launch is issued on `stream` and returns without waiting.
#pragma once

#include <cstdint>

#include "engine/cuda_runtime.h"

namespace coco {

// Forward. x (N, D), labels (N), centres c (K, D).
//   dist (N, D)   = x_i - c_{y_i}            (0 for a bad label)
//   row (N)       = ||x_i - c_{y_i}||^2 in double (NaN for a bad label)
//   loss (1)      = sum_i row_i / (2N), summed in a fixed order; 0 when N = 0; NaN
//                   if any label is not a class id in [0, K) (the CPU path throws).
void center_loss_forward_cuda(float* loss, float* dist, double* row, const float* x, const float* labels,
                              const float* centres, int64_t n, int64_t d, int64_t k, cuda::Stream stream);

// Backward.
//   chain (2N int32, scratch): per sample the next sample of its class and whether
//                              it is its class's first sample
//   dc (K, D) (+=)   = coef_j * sum_{i: y_i = j} (c_j - x_i), the sum in batch order
//                      in double, coef_j = 1 / (1 + n_j) (seed_update) or
//                      top_diff / N (gradient); classes absent from the batch and
//                      bad labels add nothing
//   dx (N, D) (=)    = (top_diff / N) * dist, if dx is not null
// top_diff is the device scalar of the loss top's diff.
void center_loss_backward_cuda(float* dc, float* dx, int32_t* chain, const float* dist, const float* labels,
                               const float* top_diff, int64_t n, int64_t d, int64_t k, bool seed_update,
                               float loss_scale, cuda::Stream stream);

}  // namespace coco
