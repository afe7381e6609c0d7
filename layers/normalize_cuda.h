// Launchers of the Normalize layer's CUDA kernels (layers/normalize_layer.cu).
// Device pointers; every launch is issued on `stream` and returns without waiting.
#pragma once

#include <cstdint>

#include "engine/cuda_runtime.h"

namespace coco {

// y (N, D) = coeff * x / n_i per row, n_i = sqrt(||x_i||^2 + eps) with the sum of
// squares in double; norms (N doubles) = n_i. y may be x (in place).
void normalize_forward_cuda(float* y, double* norms, const float* x, int64_t n, int64_t d, float coeff,
                            cuda::Stream stream);
// dx (N, D) (=) = coeff / n_i * (g - x̂ (x̂ . g)), x̂ = y / coeff, the dot in double.
// dx may be g (in place).
void normalize_backward_cuda(float* dx, const float* y, const float* g, const double* norms, int64_t n,
                             int64_t d, float coeff, cuda::Stream stream);

}  // namespace coco
