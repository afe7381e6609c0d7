// Helpers for coco's .cu files (included by them only): the CUDA runtime's error
// check (COCO_CUDA_CHECK, engine/gpu_check.h) and launch geometry. Kernels take
// outputs, inputs, sizes, then the stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "engine/common.h"
#include "engine/cuda_runtime.h"
#include "engine/gpu_check.h"

namespace coco {
namespace cuda {

constexpr int kThreads = 256;
// Blocks for n elements with one thread each (grid-stride loops cover the rest).
inline unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

}  // namespace cuda
}  // namespace coco

// for (int64_t i = ...; i < n; i += stride)
#define COCO_KERNEL_LOOP(i, n)                                                              \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
