// ReLU: CUDA kernels. One thread per element (grid-stride); each element reads only
// itself, so in place is safe. The expressions are the CPU path's, so the results
// are bit-identical.
#include "engine/cuda_check.cuh"
#include "layers/relu_cuda.h"

namespace coco {

namespace {

__global__ void relu_forward_kernel(float* y, const float* x, int64_t n, float slope) {
  COCO_KERNEL_LOOP(i, n) {
    const float v = x[i];
    y[i] = v > 0 ? v : slope * v;
  }
}

__global__ void relu_backward_kernel(float* dx, const float* y, const float* dy, int64_t n, float slope) {
  COCO_KERNEL_LOOP(i, n) {
    const float g = dy[i];
    dx[i] = y[i] > 0 ? g : slope * g;
  }
}

}  // namespace

void relu_forward_cuda(float* y, const float* x, int64_t n, float slope, cuda::Stream stream) {
  if (n <= 0) return;
  relu_forward_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(y, x, n, slope);
  cuda::check_launch("relu_forward_kernel");
}

void relu_backward_cuda(float* dx, const float* y, const float* dy, int64_t n, float slope, cuda::Stream stream) {
  if (n <= 0) return;
  relu_backward_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(dx, y, dy, n, slope);
  cuda::check_launch("relu_backward_kernel");
}

}  // namespace coco
