// Dropout: CUDA kernel. The mask is a pure function of (seed, stream, index) --
// engine/rng.h's uniform01, compiled for the device here -- so element i is kept on
// the GPU exactly when it is kept on the CPU, and the kept values are the same single
// float multiply: the output is bit-identical to the CPU's.
#include "engine/cuda_check.cuh"
#include "engine/rng.h"
#include "layers/dropout_cuda.h"

namespace coco {

namespace {

__global__ void dropout_kernel(float* out, const float* in, int64_t n, uint64_t seed, uint64_t mask_stream,
                               float ratio, float scale) {
  COCO_KERNEL_LOOP(i, n) {
    const float v = in[i];
    out[i] = uniform01(seed, mask_stream, static_cast<uint64_t>(i)) >= ratio ? v * scale : 0.0f;
  }
}

}  // namespace

void dropout_apply_cuda(float* out, const float* in, int64_t n, uint64_t seed, uint64_t mask_stream, float ratio,
                        float scale, cuda::Stream stream) {
  if (n <= 0) return;
  dropout_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(out, in, n, seed, mask_stream, ratio, scale);
  cuda::check_launch("dropout_kernel");
}

}  // namespace coco
