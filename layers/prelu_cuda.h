// Launchers of the PReLU layer's CUDA kernels (layers/prelu_layer.cu).
// Device pointers; every launch is issued on `stream` and returns without waiting.
// The bottom is viewed as N*C planes of S = count(2) elements; plane p has channel p % C.
#pragma once

#include <cstdint>

#include "engine/cuda_runtime.h"

namespace coco {

// y (N, C, S) = x > 0 ? x : a_c * x, a_c = slopes[shared ? 0 : c]. keep (N, C, S), when
// not null, receives a copy of x (in place, where y is x: backward needs x).
void prelu_forward_cuda(float* y, float* keep, const float* x, const float* slopes, int64_t planes, int64_t C,
                        int64_t S, bool shared, cuda::Stream stream);

// dx (N, C, S) (=) = dy * (x > 0 ? 1 : a_c), skipped where dx is null;
// plane_sums (N*C) (=) = per plane sum over x <= 0 of dy * x (float, fixed order);
// dslopes (C, or 1 if shared) (+=) = per channel sum of the plane sums over n, in
// double, in a fixed order (deterministic). dx may be dy.
void prelu_backward_cuda(float* dx, float* plane_sums, float* dslopes, const float* x, const float* dy,
                         const float* slopes, int64_t N, int64_t C, int64_t S, bool shared, cuda::Stream stream);

}  // namespace coco
