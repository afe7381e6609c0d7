// Launchers of the ReLU layer's CUDA kernels (layers/relu_layer.cu).
// Device pointers; every launch is issued on `stream` and returns without waiting.
#pragma once

#include <cstdint>

#include "engine/cuda_runtime.h"

namespace coco {

// y (n) = x > 0 ? x : slope * x. y may be x (in place).
void relu_forward_cuda(float* y, const float* x, int64_t n, float slope, cuda::Stream stream);
// dx (n) (=) = y > 0 ? dy : slope * dy, the mask read from the top data y (its sign
// is x's for slope >= 0, so this holds in place too). dx may be dy.
void relu_backward_cuda(float* dx, const float* y, const float* dy, int64_t n, float slope, cuda::Stream stream);

}  // namespace coco
