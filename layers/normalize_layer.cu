// Normalize: CUDA kernels. One block per sample row; the row's sum (of squares in
// forward, of x̂ . g in backward) is reduced in double by cub::BlockReduce, whose
// order is fixed for a fixed block size: deterministic, as the CPU path.
#include <cub/block/block_reduce.cuh>

#include "engine/cuda_check.cuh"
#include "engine/norm.h"
#include "layers/normalize_cuda.h"

namespace coco {

namespace {

constexpr int kBlock = 256;

// Grid: one block per row i (rows beyond 2^31 - 1 are covered by a grid-stride loop).
// Each row is read completely before it is written, so y may alias x.
__global__ void normalize_forward_kernel(float* y, double* norms, const float* x, int64_t n, int64_t d,
                                         float coeff) {
  using Reduce = cub::BlockReduce<double, kBlock>;
  __shared__ typename Reduce::TempStorage tmp;
  __shared__ float scale;
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const float* xi = x + i * d;
    double ss = 0;
    for (int64_t k = threadIdx.x; k < d; k += kBlock) ss += static_cast<double>(xi[k]) * xi[k];
    ss = Reduce(tmp).Sum(ss);  // valid in thread 0
    if (threadIdx.x == 0) {
      const double norm = sqrt(ss + kNormEpsilon);
      norms[i] = norm;
      scale = static_cast<float>(static_cast<double>(coeff) / norm);
    }
    __syncthreads();  // scale is ready, every read of the row is done
    const float s = scale;
    float* yi = y + i * d;
    for (int64_t k = threadIdx.x; k < d; k += kBlock) yi[k] = s * xi[k];
    __syncthreads();  // tmp and scale are reused by the next row
  }
}

// dx_i = s (g_i - y_i / coeff * dot), dot = sum_k y_ik / coeff * g_ik, s = coeff / n_i:
// the CPU path's expression, evaluated in double the same way. Each thread writes
// only the elements it read, so dx may alias g.
__global__ void normalize_backward_kernel(float* dx, const float* y, const float* g, const double* norms,
                                          int64_t n, int64_t d, float coeff) {
  using Reduce = cub::BlockReduce<double, kBlock>;
  __shared__ typename Reduce::TempStorage tmp;
  __shared__ double dot_shared;
  const double inv_coeff = 1.0 / static_cast<double>(coeff);
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const float* yi = y + i * d;
    const float* gi = g + i * d;
    double dot = 0;
    for (int64_t k = threadIdx.x; k < d; k += kBlock) dot += yi[k] * inv_coeff * gi[k];
    dot = Reduce(tmp).Sum(dot);
    if (threadIdx.x == 0) dot_shared = dot;
    __syncthreads();
    const double ds = dot_shared;
    const double s = static_cast<double>(coeff) / norms[i];
    float* dxi = dx + i * d;
    for (int64_t k = threadIdx.x; k < d; k += kBlock)
      dxi[k] = static_cast<float>(s * (gi[k] - yi[k] * inv_coeff * ds));
    __syncthreads();
  }
}

unsigned row_blocks(int64_t n) { return static_cast<unsigned>(n < 1 ? 1 : (n > 65535 * 16 ? 65535 * 16 : n)); }

}  // namespace

void normalize_forward_cuda(float* y, double* norms, const float* x, int64_t n, int64_t d, float coeff,
                            cuda::Stream stream) {
  if (n <= 0) return;
  normalize_forward_kernel<<<row_blocks(n), kBlock, 0, stream>>>(y, norms, x, n, d, coeff);
  cuda::check_launch("normalize_forward_kernel");
}

void normalize_backward_cuda(float* dx, const float* y, const float* g, const double* norms, int64_t n,
                             int64_t d, float coeff, cuda::Stream stream) {
  if (n <= 0) return;
  normalize_backward_kernel<<<row_blocks(n), kBlock, 0, stream>>>(dx, y, g, norms, n, d, coeff);
  cuda::check_launch("normalize_backward_kernel");
}

}  // namespace coco
