// PReLU: CUDA kernels.
//
// Forward is elementwise. Backward follows the CPU path's two steps: one warp per
// (n, c) plane writes dx and the plane's slope-gradient sum (lanes accumulate a fixed
// stride of the plane, then a shuffle tree: fixed order); then one block adds the
// plane sums per channel over n in double and adds them to the slope gradient. No
// atomics: the result is the same on every run.
#include <cub/block/block_reduce.cuh>

#include "engine/cuda_check.cuh"
#include "layers/prelu_cuda.h"

namespace coco {

namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = cuda::kThreads / kWarp;
constexpr int kChannelBlock = 256;

// I = uint32_t where the element count allows: 64-bit division is several times
// slower and would dominate this memory-bound loop.
template <typename I>
__global__ void prelu_forward_kernel(float* y, float* keep, const float* x, const float* slopes, I n, I C, I S,
                                     bool shared) {
  for (I i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
    const float v = x[i];
    const float a = slopes[shared ? 0 : (i / S) % C];
    if (keep) keep[i] = v;
    y[i] = v > 0 ? v : a * v;
  }
}

// One warp per plane (grid-stride over planes). Each lane reads and writes only its
// own elements, so dx may alias dy.
__global__ void prelu_plane_kernel(float* dx, float* plane_sums, const float* x, const float* dy,
                                   const float* slopes, int64_t planes, int64_t C, int64_t S, bool shared) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp; p < planes;
       p += warps) {
    const float a = slopes[shared ? 0 : p % C];
    const float* xp = x + p * S;
    const float* gp = dy + p * S;
    float acc = 0.f;
    if (dx) {
      float* dp = dx + p * S;
      for (int64_t i = lane; i < S; i += kWarp) {
        const float v = xp[i], g = gp[i];
        acc += v <= 0 ? g * v : 0.f;
        dp[i] = v > 0 ? g : a * g;
      }
    } else {
      for (int64_t i = lane; i < S; i += kWarp) {
        const float v = xp[i];
        acc += v <= 0 ? gp[i] * v : 0.f;
      }
    }
    for (int off = kWarp / 2; off > 0; off /= 2) acc += __shfl_down_sync(0xffffffffu, acc, off);
    if (lane == 0) plane_sums[p] = acc;
  }
}

// One block: thread t sums channels t, t + 256, ... over n in double. Per channel
// slope: added at once. Shared slope: the per-thread totals meet in a block reduction
// (fixed order for a fixed block size).
__global__ void prelu_channel_kernel(float* dslopes, const float* plane_sums, int64_t N, int64_t C, bool shared) {
  using Reduce = cub::BlockReduce<double, kChannelBlock>;
  __shared__ typename Reduce::TempStorage tmp;
  double total = 0;
  for (int64_t c = threadIdx.x; c < C; c += kChannelBlock) {
    double acc = 0;
    for (int64_t n = 0; n < N; ++n) acc += plane_sums[n * C + c];
    if (shared)
      total += acc;
    else
      dslopes[c] += static_cast<float>(acc);
  }
  if (shared) {
    total = Reduce(tmp).Sum(total);  // valid in thread 0
    if (threadIdx.x == 0) dslopes[0] += static_cast<float>(total);
  }
}

}  // namespace

void prelu_forward_cuda(float* y, float* keep, const float* x, const float* slopes, int64_t planes, int64_t C,
                        int64_t S, bool shared, cuda::Stream stream) {
  const int64_t n = planes * S;
  if (n <= 0) return;
  if (n < (int64_t{1} << 31))  // i + grid stride stays below 2^32
    prelu_forward_kernel<uint32_t><<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(
        y, keep, x, slopes, static_cast<uint32_t>(n), static_cast<uint32_t>(C), static_cast<uint32_t>(S), shared);
  else
    prelu_forward_kernel<int64_t><<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(y, keep, x, slopes, n, C, S,
                                                                                      shared);
  cuda::check_launch("prelu_forward_kernel");
}

void prelu_backward_cuda(float* dx, float* plane_sums, float* dslopes, const float* x, const float* dy,
                         const float* slopes, int64_t N, int64_t C, int64_t S, bool shared, cuda::Stream stream) {
  const int64_t planes = N * C;
  if (planes <= 0) return;
  const int64_t want = (planes + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const unsigned blocks = static_cast<unsigned>(want < 65535 * 8 ? want : 65535 * 8);
  prelu_plane_kernel<<<blocks, cuda::kThreads, 0, stream>>>(dx, plane_sums, x, dy, slopes, planes, C, S, shared);
  cuda::check_launch("prelu_plane_kernel");
  prelu_channel_kernel<<<1, kChannelBlock, 0, stream>>>(dslopes, plane_sums, N, C, shared);
  cuda::check_launch("prelu_channel_kernel");
}

}  // namespace coco
