// Kernels of BatchNorm and BN (layers/batch_norm_cuda.h): deterministic per-channel
// reductions in double and elementwise steps with the CPU's unfused float operations.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "engine/cuda_check.cuh"
#include "layers/batch_norm_cuda.h"

namespace coco {

namespace {

constexpr int kReduceThreads = 256;
// Elements of one channel a reduction block takes (its chunk), and the most chunks
// per channel (larger batches get longer chunks). Both fixed: the summation order
// depends on the shape only.
constexpr int64_t kChunk = 8192;
constexpr int64_t kMaxChunks = 1024;
constexpr unsigned kMaxGridY = 65535;

// The chunking of a channel's m = N*S elements: `chunks` blocks of `len` elements,
// the last one possibly shorter, none empty.
struct Chunks {
  uint32_t len = 1, count = 1;
};

Chunks chunks_for(int64_t m) {
  Chunks k;
  const int64_t want = std::min<int64_t>(std::max<int64_t>((m + kChunk - 1) / kChunk, 1), kMaxChunks);
  const int64_t len = std::max<int64_t>((m + want - 1) / want, 1);
  k.len = static_cast<uint32_t>(len);
  k.count = static_cast<uint32_t>(std::max<int64_t>((m + len - 1) / len, 1));
  return k;
}

void check_sizes(int64_t N, int64_t C, int64_t S, const char* what) {
  COCO_CHECK(N >= 0 && C > 0 && S >= 0, what, ": bad shape (", N, ", ", C, ", ", S, ")");
  // 32-bit chunk arithmetic (i0 + len must not wrap).
  COCO_CHECK(N * S < (int64_t{1} << 31), what, ": ", N * S, " values per channel; at most 2^31 - 1 are supported");
}

// Sum of v over the block, returned to every thread. A fixed pattern of shuffles
// and one shared-memory step: deterministic. `shared` holds blockDim.x / 32 values.
__device__ double block_sum(double v, double* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < static_cast<int>(blockDim.x >> 5) ? shared[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane == 0) shared[0] = v;
  }
  __syncthreads();
  const double r = shared[0];
  __syncthreads();  // `shared` is reused by the next call
  return r;
}

// Element i (in [0, N*S)) of channel c in an (N, C, S) array.
__device__ __forceinline__ size_t channel_index(uint32_t i, uint32_t c, uint32_t C, uint32_t S) {
  const uint32_t n = i / S, s = i - n * S;
  return (static_cast<size_t>(n) * C + c) * S + s;
}

// partial[(c * chunks + j) * 2 + {0, 1}] = (sum, sum of squared deviations from the
// chunk's own mean) of channel c's elements in chunk j. Grid (chunks, <= C).
__global__ void stats_partial_kernel(double* partial, const float* x, uint32_t C, uint32_t S, uint32_t m,
                                     uint32_t len, uint32_t chunks) {
  __shared__ double shared[kReduceThreads / 32];
  const uint32_t j = blockIdx.x;
  const uint32_t i0 = j * len, i1 = min(m, i0 + len);
  for (uint32_t c = blockIdx.y; c < C; c += gridDim.y) {
    double s = 0;
    for (uint32_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) s += x[channel_index(i, c, C, S)];
    s = block_sum(s, shared);
    const double mu = s / static_cast<double>(i1 - i0);
    double q = 0;
    for (uint32_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
      const double d = x[channel_index(i, c, C, S)] - mu;
      q += d * d;
    }
    q = block_sum(q, shared);
    if (threadIdx.x == 0) {
      partial[2 * (static_cast<size_t>(c) * chunks + j)] = s;
      partial[2 * (static_cast<size_t>(c) * chunks + j) + 1] = q;
    }
  }
}

// One thread per channel combines its chunks in order (Chan et al.):
//   mean = sum / m,  M2 = sum_j M2_j + n_j (mean_j - mean)^2,  var = M2 / m.
__global__ void stats_final_kernel(float* mean, float* var, const double* partial, uint32_t C, uint32_t m,
                                   uint32_t len, uint32_t chunks) {
  for (uint32_t c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += blockDim.x * gridDim.x) {
    const double* p = partial + 2 * static_cast<size_t>(c) * chunks;
    double total = 0;
    for (uint32_t j = 0; j < chunks; ++j) total += p[2 * j];
    const double mu = total / static_cast<double>(m);
    double q = 0;
    for (uint32_t j = 0; j < chunks; ++j) {
      const double n_j = static_cast<double>(min(m, (j + 1) * len) - j * len);
      const double d = p[2 * j] / n_j - mu;
      q += p[2 * j + 1] + n_j * d * d;
    }
    mean[c] = static_cast<float>(mu);
    var[c] = static_cast<float>(q / static_cast<double>(m));
  }
}

// partial[(c * chunks + j) * 2 + {0, 1}] = (sum dy, sum dy * x_hat) over chunk j of
// channel c, in double.
__global__ void grad_partial_kernel(double* partial, const float* dy, const float* x_hat, uint32_t C, uint32_t S,
                                    uint32_t m, uint32_t len, uint32_t chunks) {
  __shared__ double shared[kReduceThreads / 32];
  const uint32_t j = blockIdx.x;
  const uint32_t i0 = j * len, i1 = min(m, i0 + len);
  for (uint32_t c = blockIdx.y; c < C; c += gridDim.y) {
    double a = 0, b = 0;
    for (uint32_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
      const size_t k = channel_index(i, c, C, S);
      const float g = dy[k];
      a += g;
      b += static_cast<double>(g) * x_hat[k];
    }
    a = block_sum(a, shared);
    b = block_sum(b, shared);
    if (threadIdx.x == 0) {
      partial[2 * (static_cast<size_t>(c) * chunks + j)] = a;
      partial[2 * (static_cast<size_t>(c) * chunks + j) + 1] = b;
    }
  }
}

__global__ void grad_final_kernel(float* sum_dy, float* sum_dy_xhat, const double* partial, uint32_t C,
                                  uint32_t chunks) {
  for (uint32_t c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += blockDim.x * gridDim.x) {
    const double* p = partial + 2 * static_cast<size_t>(c) * chunks;
    double a = 0, b = 0;
    for (uint32_t j = 0; j < chunks; ++j) a += p[2 * j], b += p[2 * j + 1];
    sum_dy[c] = static_cast<float>(a);
    sum_dy_xhat[c] = static_cast<float>(b);
  }
}

// inv_std (C) = 1 / sqrt(var + eps), in double (IEEE sqrt and division), rounded once.
__global__ void inv_std_kernel(float* inv_std, const float* var, float eps, uint32_t C) {
  for (uint32_t c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += blockDim.x * gridDim.x)
    inv_std[c] = static_cast<float>(1.0 / sqrt(static_cast<double>(var[c]) + static_cast<double>(eps)));
}

// x_hat = (x - mean) * inv_std; y = x_hat (plain) or scale * x_hat + shift (affine).
// The _rn intrinsics keep nvcc from fusing into FMAs, so the CPU's float results are
// reproduced exactly. I: the index type (32-bit where the tensor allows: cheaper
// division).
template <typename I, bool kAffine>
__global__ void normalize_kernel(float* x_hat, float* y, const float* x, const float* mean, const float* inv_std,
                                 const float* scale, const float* shift, I C, I S, I total) {
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<I>(blockDim.x) * gridDim.x) {
    const I c = (i / S) % C;
    const float v = __fmul_rn(__fsub_rn(x[i], mean[c]), inv_std[c]);
    x_hat[i] = v;
    if (kAffine)
      y[i] = __fadd_rn(__fmul_rn(scale[c], v), shift[c]);
    else if (y)
      y[i] = v;
  }
}

// dx = k * (dy - mean_dy - x_hat * mean_dy_xhat) (batch statistics) or k * dy,
// k = gamma * inv_std, in the CPU's order of float operations.
template <typename I>
__global__ void backward_input_kernel(float* dx, const float* dy, const float* x_hat, const float* inv_std,
                                      const float* gamma, const float* sum_dy, const float* sum_dy_xhat,
                                      bool batch_stats, float inv_m, I C, I S, I total) {
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<I>(blockDim.x) * gridDim.x) {
    const I c = (i / S) % C;
    const float k = __fmul_rn(gamma ? gamma[c] : 1.0f, inv_std[c]);
    const float g = dy[i];
    if (batch_stats) {
      const float mean_dy = __fmul_rn(sum_dy[c], inv_m), mean_dy_xhat = __fmul_rn(sum_dy_xhat[c], inv_m);
      dx[i] = __fmul_rn(k, __fsub_rn(__fsub_rn(g, mean_dy), __fmul_rn(x_hat[i], mean_dy_xhat)));
    } else {
      dx[i] = __fmul_rn(k, g);
    }
  }
}

__global__ void update_sums_kernel(float* sum_mean, float* sum_var, float* factor, const float* mean,
                                   const float* var, float maf, float correction, uint32_t C) {
  if (blockIdx.x == 0 && threadIdx.x == 0) factor[0] = __fadd_rn(__fmul_rn(factor[0], maf), 1.0f);
  for (uint32_t c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += blockDim.x * gridDim.x) {
    sum_mean[c] = __fadd_rn(__fmul_rn(maf, sum_mean[c]), mean[c]);
    sum_var[c] = __fadd_rn(__fmul_rn(maf, sum_var[c]), __fmul_rn(correction, var[c]));
  }
}

__global__ void global_stats_kernel(float* mean, float* var, const float* sum_mean, const float* sum_var,
                                    const float* factor, uint32_t C) {
  const float f = factor[0];
  const float k = f == 0.0f ? 0.0f : __fdiv_rn(1.0f, f);
  for (uint32_t c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += blockDim.x * gridDim.x) {
    mean[c] = __fmul_rn(k, sum_mean[c]);
    var[c] = __fmul_rn(k, sum_var[c]);
  }
}

__global__ void update_running_kernel(float* run_mean, float* run_var, const float* mean, const float* var,
                                      float decay, float one_minus_decay, uint32_t C) {
  for (uint32_t c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += blockDim.x * gridDim.x) {
    run_mean[c] = __fadd_rn(__fmul_rn(decay, run_mean[c]), __fmul_rn(one_minus_decay, mean[c]));
    run_var[c] = __fadd_rn(__fmul_rn(decay, run_var[c]), __fmul_rn(one_minus_decay, var[c]));
  }
}

dim3 reduction_grid(const Chunks& k, int64_t C) {
  return dim3(k.count, static_cast<unsigned>(std::min<int64_t>(C, kMaxGridY)));
}

void launch_normalize(float* inv_std, float* x_hat, float* y, const float* x, const float* mean, const float* var,
                      const float* scale, const float* shift, float eps, int64_t N, int64_t C, int64_t S,
                      cuda::Stream stream, const char* what) {
  check_sizes(N, C, S, what);
  inv_std_kernel<<<cuda::blocks_for(C), cuda::kThreads, 0, stream>>>(inv_std, var, eps, static_cast<uint32_t>(C));
  cuda::check_launch("bn inv_std_kernel");
  const int64_t total = N * C * S;
  if (total == 0) return;
  const unsigned blocks = cuda::blocks_for(total);
  const bool affine = scale != nullptr;
  if (total < (int64_t{1} << 32)) {
    using I = uint32_t;
    if (affine)
      normalize_kernel<I, true><<<blocks, cuda::kThreads, 0, stream>>>(x_hat, y, x, mean, inv_std, scale, shift, I(C),
                                                                       I(S), I(total));
    else
      normalize_kernel<I, false><<<blocks, cuda::kThreads, 0, stream>>>(x_hat, y, x, mean, inv_std, scale, shift,
                                                                        I(C), I(S), I(total));
  } else {
    using I = uint64_t;
    if (affine)
      normalize_kernel<I, true><<<blocks, cuda::kThreads, 0, stream>>>(x_hat, y, x, mean, inv_std, scale, shift, I(C),
                                                                       I(S), I(total));
    else
      normalize_kernel<I, false><<<blocks, cuda::kThreads, 0, stream>>>(x_hat, y, x, mean, inv_std, scale, shift,
                                                                        I(C), I(S), I(total));
  }
  cuda::check_launch(what);
}

}  // namespace

void bn_batch_stats_cuda(float* mean, float* var, const float* x, int64_t N, int64_t C, int64_t S,
                         cuda::Stream stream) {
  check_sizes(N, C, S, "bn_batch_stats_cuda");
  const int64_t m = N * S;
  if (m == 0) return;
  const Chunks k = chunks_for(m);
  double* partial = static_cast<double*>(cuda::workspace(sizeof(double) * 2 * static_cast<size_t>(C) * k.count));
  stats_partial_kernel<<<reduction_grid(k, C), kReduceThreads, 0, stream>>>(
      partial, x, static_cast<uint32_t>(C), static_cast<uint32_t>(S), static_cast<uint32_t>(m), k.len, k.count);
  cuda::check_launch("bn stats_partial_kernel");
  stats_final_kernel<<<cuda::blocks_for(C), cuda::kThreads, 0, stream>>>(
      mean, var, partial, static_cast<uint32_t>(C), static_cast<uint32_t>(m), k.len, k.count);
  cuda::check_launch("bn stats_final_kernel");
}

void bn_normalize_cuda(float* inv_std, float* x_hat, float* y, const float* x, const float* mean,
                       const float* var, float eps, int64_t N, int64_t C, int64_t S, cuda::Stream stream) {
  launch_normalize(inv_std, x_hat, y, x, mean, var, nullptr, nullptr, eps, N, C, S, stream, "bn normalize_kernel");
}

void bn_normalize_affine_cuda(float* inv_std, float* x_hat, float* y, const float* x, const float* mean,
                              const float* var, const float* scale, const float* shift, float eps, int64_t N,
                              int64_t C, int64_t S, cuda::Stream stream) {
  COCO_CHECK(scale && shift && y, "bn_normalize_affine_cuda needs scale, shift and y");
  launch_normalize(inv_std, x_hat, y, x, mean, var, scale, shift, eps, N, C, S, stream,
                   "bn normalize_kernel (affine)");
}

void bn_grad_sums_cuda(float* sum_dy, float* sum_dy_xhat, const float* dy, const float* x_hat, int64_t N,
                       int64_t C, int64_t S, cuda::Stream stream) {
  check_sizes(N, C, S, "bn_grad_sums_cuda");
  const int64_t m = N * S;
  if (m == 0) {
    COCO_CUDA_CHECK(cudaMemsetAsync(sum_dy, 0, sizeof(float) * C, stream));
    COCO_CUDA_CHECK(cudaMemsetAsync(sum_dy_xhat, 0, sizeof(float) * C, stream));
    return;
  }
  const Chunks k = chunks_for(m);
  double* partial = static_cast<double*>(cuda::workspace(sizeof(double) * 2 * static_cast<size_t>(C) * k.count));
  grad_partial_kernel<<<reduction_grid(k, C), kReduceThreads, 0, stream>>>(
      partial, dy, x_hat, static_cast<uint32_t>(C), static_cast<uint32_t>(S), static_cast<uint32_t>(m), k.len,
      k.count);
  cuda::check_launch("bn grad_partial_kernel");
  grad_final_kernel<<<cuda::blocks_for(C), cuda::kThreads, 0, stream>>>(sum_dy, sum_dy_xhat, partial,
                                                                         static_cast<uint32_t>(C), k.count);
  cuda::check_launch("bn grad_final_kernel");
}

void bn_backward_input_cuda(float* dx, const float* dy, const float* x_hat, const float* inv_std,
                            const float* gamma, const float* sum_dy, const float* sum_dy_xhat, bool batch_stats,
                            int64_t N, int64_t C, int64_t S, cuda::Stream stream) {
  check_sizes(N, C, S, "bn_backward_input_cuda");
  const int64_t total = N * C * S;
  if (total == 0) return;
  // As the CPU: 1 / (N*S) in double, rounded to float once.
  const float inv_m = static_cast<float>(1.0 / (static_cast<double>(N) * S));
  const unsigned blocks = cuda::blocks_for(total);
  if (total < (int64_t{1} << 32)) {
    using I = uint32_t;
    backward_input_kernel<I><<<blocks, cuda::kThreads, 0, stream>>>(dx, dy, x_hat, inv_std, gamma, sum_dy,
                                                                    sum_dy_xhat, batch_stats, inv_m, I(C), I(S),
                                                                    I(total));
  } else {
    using I = uint64_t;
    backward_input_kernel<I><<<blocks, cuda::kThreads, 0, stream>>>(dx, dy, x_hat, inv_std, gamma, sum_dy,
                                                                    sum_dy_xhat, batch_stats, inv_m, I(C), I(S),
                                                                    I(total));
  }
  cuda::check_launch("bn backward_input_kernel");
}

void batch_norm_update_sums_cuda(float* sum_mean, float* sum_var, float* factor, const float* mean,
                                 const float* var, float maf, float correction, int64_t C, cuda::Stream stream) {
  update_sums_kernel<<<cuda::blocks_for(C), cuda::kThreads, 0, stream>>>(sum_mean, sum_var, factor, mean, var, maf,
                                                                          correction, static_cast<uint32_t>(C));
  cuda::check_launch("batch_norm update_sums_kernel");
}

void batch_norm_global_stats_cuda(float* mean, float* var, const float* sum_mean, const float* sum_var,
                                  const float* factor, int64_t C, cuda::Stream stream) {
  global_stats_kernel<<<cuda::blocks_for(C), cuda::kThreads, 0, stream>>>(mean, var, sum_mean, sum_var, factor,
                                                                           static_cast<uint32_t>(C));
  cuda::check_launch("batch_norm global_stats_kernel");
}

void bn_update_running_cuda(float* run_mean, float* run_var, const float* mean, const float* var, float decay,
                            int64_t C, cuda::Stream stream) {
  // (1 - decay) in float on the host, as the CPU path computes it.
  const float one_minus_decay = 1 - decay;
  update_running_kernel<<<cuda::blocks_for(C), cuda::kThreads, 0, stream>>>(run_mean, run_var, mean, var, decay,
                                                                              one_minus_decay,
                                                                              static_cast<uint32_t>(C));
  cuda::check_launch("bn update_running_kernel");
}

}  // namespace coco
