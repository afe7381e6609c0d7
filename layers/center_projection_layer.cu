// CenterProjection: CUDA kernels besides the GEMMs. Every sum is in double and in a
// fixed order (cub::BlockReduce for a fixed block size, or one thread's loop):
// deterministic, as the CPU path.
#include <cub/block/block_reduce.cuh>

#include "engine/cuda_check.cuh"
#include "engine/norm.h"
#include "layers/center_projection_cuda.h"

namespace coco {

namespace {

constexpr int kBlock = 256;

// One block per weight row (grid-stride over rows).
__global__ void center_projection_renormalize_kernel(float* w, int64_t k, int64_t d) {
  using Reduce = cub::BlockReduce<double, kBlock>;
  __shared__ typename Reduce::TempStorage tmp;
  __shared__ float scale;
  for (int64_t j = blockIdx.x; j < k; j += gridDim.x) {
    float* wj = w + j * d;
    double ss = 0;
    for (int64_t c = threadIdx.x; c < d; c += kBlock) ss += static_cast<double>(wj[c]) * wj[c];
    ss = Reduce(tmp).Sum(ss);
    if (threadIdx.x == 0) scale = static_cast<float>(1.0 / sqrt(ss + kNormEpsilon));
    __syncthreads();
    const float s = scale;
    for (int64_t c = threadIdx.x; c < d; c += kBlock) wj[c] *= s;
    __syncthreads();  // tmp and scale are reused by the next row
  }
}

// y (N, K): element (i, j) += bias[j].
__global__ void center_projection_add_bias_kernel(float* y, const float* bias, int64_t n, int64_t k) {
  COCO_KERNEL_LOOP(e, n * k) { y[e] += bias[e % k]; }
}

// One thread per column j: db[j] += sum_i dy[i, j] in row order (coalesced over j).
__global__ void center_projection_bias_grad_kernel(float* db, const float* dy, int64_t n, int64_t k) {
  COCO_KERNEL_LOOP(j, k) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += dy[i * k + j];
    db[j] += static_cast<float>(s);
  }
}

unsigned row_blocks(int64_t n) { return static_cast<unsigned>(n < 1 ? 1 : (n > 65535 * 16 ? 65535 * 16 : n)); }

}  // namespace

void center_projection_renormalize_cuda(float* w, int64_t k, int64_t d, cuda::Stream stream) {
  if (k <= 0) return;
  center_projection_renormalize_kernel<<<row_blocks(k), kBlock, 0, stream>>>(w, k, d);
  cuda::check_launch("center_projection_renormalize_kernel");
}

void center_projection_add_bias_cuda(float* y, const float* bias, int64_t n, int64_t k, cuda::Stream stream) {
  if (n * k <= 0) return;
  center_projection_add_bias_kernel<<<cuda::blocks_for(n * k), cuda::kThreads, 0, stream>>>(y, bias, n, k);
  cuda::check_launch("center_projection_add_bias_kernel");
}

void center_projection_bias_grad_cuda(float* db, const float* dy, int64_t n, int64_t k, cuda::Stream stream) {
  if (k <= 0) return;
  center_projection_bias_grad_kernel<<<cuda::blocks_for(k), cuda::kThreads, 0, stream>>>(db, dy, n, k);
  cuda::check_launch("center_projection_bias_grad_kernel");
}

}  // namespace coco
