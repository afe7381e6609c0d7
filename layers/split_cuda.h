// Launcher of the Split layer's CUDA kernel (layers/split_layer.cu).
// Device pointers (the array of top diff pointers lives on the host); issued on
// `stream`, returns without waiting.
#pragma once

#include <cstdint>

#include "engine/cuda_runtime.h"

namespace coco {

// dx (n) (=) = dys[0] + dys[1] + ... + dys[tops - 1], added in that order (the CPU
// path's copy-then-axpy order, bit-identical).
void split_backward_cuda(float* dx, const float* const* dys, int64_t tops, int64_t n, cuda::Stream stream);

}  // namespace coco
