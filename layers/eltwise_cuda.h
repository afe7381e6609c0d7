// Launchers of the Eltwise layer's CUDA kernels (layers/eltwise_layer.cu).
// Device pointers (the arrays of bottom pointers and the coefficients live on the
// host; any number of bottoms); every launch is issued on `stream` and returns
// without waiting.
#pragma once

#include <cstdint>

#include "engine/cuda_runtime.h"

namespace coco {

enum class EltwiseCudaOp { kProd, kSum, kMax };

// y (n) = sum_b coeff[b] * xs[b] (kSum, accumulated in bottom order as the CPU path),
// prod_b xs[b] (kProd), or max_b xs[b] (kMax; argmax (n) = index of the first
// bottom reaching the maximum, as a float). argmax is only touched by kMax, coeff
// only read by kSum.
void eltwise_forward_cuda(float* y, float* argmax, const float* const* xs, const float* coeff, int64_t bottoms,
                          int64_t n, EltwiseCudaOp op, cuda::Stream stream);

// dx (n) (=) for bottom k: coeff_k * dy (kSum); dy * prod_{b != k} xs[b] (kProd with
// stable_prod_grad) or dy * y / xs[k] (kProd without); argmax == k ? dy : 0 (kMax).
void eltwise_backward_cuda(float* dx, const float* dy, const float* y, const float* argmax,
                           const float* const* xs, int64_t bottoms, int64_t k, int64_t n, EltwiseCudaOp op,
                           float coeff_k, bool stable_prod_grad, cuda::Stream stream);

}  // namespace coco
