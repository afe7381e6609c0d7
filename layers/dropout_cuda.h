// Launcher of the Dropout layer's CUDA kernel (layers/dropout_layer.cu).
// Device pointers; the launch is issued on `stream` and returns without waiting.
#pragma once

#include <cstdint>

#include "engine/cuda_runtime.h"

namespace coco {

// out (n) = uniform01(seed, mask_stream, i) >= ratio ? in * scale : 0 -- the CPU
// path's counter-based mask (engine/rng.h), so both draw the identical mask. out may
// be in (in place).
void dropout_apply_cuda(float* out, const float* in, int64_t n, uint64_t seed, uint64_t mask_stream, float ratio,
                        float scale, cuda::Stream stream);

}  // namespace coco
