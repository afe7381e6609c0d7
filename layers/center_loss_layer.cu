// CenterLoss: CUDA kernels. Every float sum runs in a fixed order (no float atomics):
//   forward  one warp per sample for its distance, one block for the loss total;
//   backward the centre update sums each class's samples in batch order, as the CPU
//            path: one pass links every sample to the next of its class, then one
//            block per class (at its first sample) walks that chain.
#include <cub/block/block_reduce.cuh>

#include <cmath>

#include "engine/cuda_check.cuh"
#include "layers/center_loss_cuda.h"

namespace coco {

namespace {

constexpr int kWarp = 32;
constexpr int kBlock = 256;        // forward: 8 warps, 8 samples per block
constexpr int kReduceBlock = 512;  // the loss total: one block
constexpr int kCentreBlock = 128;  // backward: threads over the D columns of a centre

// The CPU path's label rule: a class id in [0, K).
__device__ __forceinline__ bool valid_label(float l, int64_t k) {
  return l >= 0 && l < static_cast<float>(k) && l == floorf(l);
}

unsigned capped(int64_t blocks) {
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 16 ? 65535 * 16 : blocks));
}

// Warp-uniform sample loop.
__global__ void center_loss_distance_kernel(float* dist, double* row, const float* x, const float* labels,
                                            const float* centres, int64_t n, int64_t d, int64_t k) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kBlock / kWarp);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * (kBlock / kWarp) + threadIdx.x / kWarp; i < n; i += warps) {
    const float l = labels[i];
    float* di = dist + i * d;
    if (!valid_label(l, k)) {
      for (int64_t j = lane; j < d; j += kWarp) di[j] = 0;
      if (lane == 0) row[i] = NAN;
      continue;
    }
    const float* xi = x + i * d;
    const float* ci = centres + static_cast<int64_t>(l) * d;
    double s = 0;
    for (int64_t j = lane; j < d; j += kWarp) {
      const float v = xi[j] - ci[j];
      di[j] = v;
      s += static_cast<double>(v) * v;
    }
    for (int off = kWarp / 2; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) row[i] = s;
  }
}

__global__ void center_loss_total_kernel(float* loss, const double* row, int64_t n) {
  using Sum = cub::BlockReduce<double, kReduceBlock>;
  __shared__ typename Sum::TempStorage tmp;
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += kReduceBlock) s += row[i];
  s = Sum(tmp).Sum(s);  // NaN if any label was bad
  if (threadIdx.x == 0) loss[0] = n > 0 ? static_cast<float>(s / (2.0 * static_cast<double>(n))) : 0.0f;
}

// chain[i] = the next sample after i with i's label (-1: none); chain[n + i] = 1 iff
// i is the first sample of its class. Samples with a bad label belong to no class.
// O(N) per thread, O(N^2) in all: N is a (per-device) batch.
__global__ void center_loss_chain_kernel(int32_t* chain, const float* labels, int64_t n, int64_t k) {
  COCO_KERNEL_LOOP(i, n) {
    const float l = labels[i];
    int32_t next = -1, first = 0;
    if (valid_label(l, k)) {
      first = 1;
      for (int64_t j = 0; j < i && first; ++j) first = labels[j] != l;
      for (int64_t j = i + 1; j < n; ++j)
        if (labels[j] == l) {
          next = static_cast<int32_t>(j);
          break;
        }
    }
    chain[i] = next;
    chain[n + i] = first;
  }
}

// One block per class present, at its first sample h: thread t sums columns
// t, t + blockDim, ... over the class's samples in batch order (double), exactly the
// CPU path's acc[col] -= dist[i * d + col], then adds coef * acc to the centre diff.
__global__ void center_loss_centre_kernel(float* dc, const int32_t* chain, const float* dist, const float* labels,
                                          const float* top_diff, int64_t n, int64_t d, bool seed_update,
                                          float loss_scale) {
  for (int64_t h = blockIdx.x; h < n; h += gridDim.x) {
    if (chain[n + h] == 0) continue;  // block-uniform
    int64_t members = 0;
    for (int64_t m = h; m >= 0; m = chain[m]) ++members;
    const double coef = seed_update ? static_cast<double>(loss_scale) / (1.0 + static_cast<double>(members))
                                    : static_cast<double>(top_diff[0]) / static_cast<double>(n);
    float* dcj = dc + static_cast<int64_t>(labels[h]) * d;
    for (int64_t col = threadIdx.x; col < d; col += blockDim.x) {
      double acc = 0;
      for (int64_t m = h; m >= 0; m = chain[m]) acc -= dist[m * d + col];
      dcj[col] += static_cast<float>(coef * acc);
    }
  }
}

// dx = s * dist, s = top_diff / (float) N in float, as the CPU path.
__global__ void center_loss_bottom_kernel(float* dx, const float* dist, const float* top_diff, int64_t n,
                                          int64_t d) {
  const float s = top_diff[0] / static_cast<float>(n);
  COCO_KERNEL_LOOP(e, n * d) { dx[e] = s * dist[e]; }
}

}  // namespace

void center_loss_forward_cuda(float* loss, float* dist, double* row, const float* x, const float* labels,
                              const float* centres, int64_t n, int64_t d, int64_t k, cuda::Stream stream) {
  if (n > 0) {
    const int64_t per_block = kBlock / kWarp;
    center_loss_distance_kernel<<<capped((n + per_block - 1) / per_block), kBlock, 0, stream>>>(
        dist, row, x, labels, centres, n, d, k);
    cuda::check_launch("center_loss_distance_kernel");
  }
  center_loss_total_kernel<<<1, kReduceBlock, 0, stream>>>(loss, row, n);
  cuda::check_launch("center_loss_total_kernel");
}

void center_loss_backward_cuda(float* dc, float* dx, int32_t* chain, const float* dist, const float* labels,
                               const float* top_diff, int64_t n, int64_t d, int64_t k, bool seed_update,
                               float loss_scale, cuda::Stream stream) {
  if (n <= 0) return;
  center_loss_chain_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(chain, labels, n, k);
  cuda::check_launch("center_loss_chain_kernel");
  center_loss_centre_kernel<<<capped(n), kCentreBlock, 0, stream>>>(dc, chain, dist, labels, top_diff, n, d,
                                                                    seed_update, loss_scale);
  cuda::check_launch("center_loss_centre_kernel");
  if (dx != nullptr) {
    center_loss_bottom_kernel<<<cuda::blocks_for(n * d), cuda::kThreads, 0, stream>>>(dx, dist, top_diff, n, d);
    cuda::check_launch("center_loss_bottom_kernel");
  }
}

}  // namespace coco
