// Launchers of the CenterProjection layer's CUDA kernels (layers/center_projection_layer.cu).
// Device pointers; every launch is issued on `stream` and returns without waiting.
// The two GEMMs of the layer are cuda_gemm calls in center_projection_layer.cpp.
#pragma once

#include <cstdint>

#include "engine/cuda_runtime.h"

namespace coco {

// w (K, D), in place: every row rewritten as w_k / sqrt(||w_k||^2 + eps), the sum of
// squares in double and the scale rounded to float once, as the CPU path.
void center_projection_renormalize_cuda(float* w, int64_t k, int64_t d, cuda::Stream stream);
// y (N, K) += bias (K) on every row.
void center_projection_add_bias_cuda(float* y, const float* bias, int64_t n, int64_t k, cuda::Stream stream);
// db (K) += column sums of dy (N, K), each summed in double over the rows in order.
void center_projection_bias_grad_cuda(float* db, const float* dy, int64_t n, int64_t k, cuda::Stream stream);

}  // namespace coco
