// Launchers of the Scale layer's CUDA kernels (layers/scale_layer.cu).
// Device pointers; every launch is issued on `stream` and returns without waiting.
// x is viewed as (outer, D, inner); the scale and bias have D elements.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/cuda_runtime.h"

namespace coco {

// y (outer, D, inner) = x * s[d] (+ b[d] where b is not null). y may be x (in place).
void scale_forward_cuda(float* y, const float* x, const float* s, const float* b, int64_t outer, int64_t D,
                        int64_t inner, cuda::Stream stream);

// dx (outer, D, inner) (=) = dy * s[d]. dx may be dy.
void scale_bottom_backward_cuda(float* dx, const float* dy, const float* s, int64_t outer, int64_t D,
                                int64_t inner, cuda::Stream stream);

// Bytes of scratch scale_param_backward_cuda needs for these sizes.
size_t scale_param_backward_workspace_bytes(int64_t outer, int64_t D, int64_t inner);

// Per scale element d, over outer and inner, in double and in a fixed order (no
// atomics, the same result on every run):
//   ds (D): sum dy * x, added (+=) when accumulate_scale (a learned scale), else
//           written (=) (the scale bottom); skipped where ds is null;
//   db (D) (+=): sum dy; skipped where db is null.
// workspace: device scratch of scale_param_backward_workspace_bytes(...) bytes.
void scale_param_backward_cuda(float* ds, float* db, const float* dy, const float* x, int64_t outer, int64_t D,
                               int64_t inner, bool accumulate_scale, void* workspace, cuda::Stream stream);

}  // namespace coco
