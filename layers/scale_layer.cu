// Scale: CUDA kernels.
//
// Forward and the bottom gradient are elementwise, with the CPU path's operations
// rounded the same way (__fmul_rn / __fadd_rn: no FMA contraction), so they are
// bit-identical to the CPU's.
//
// The scale and bias gradients reduce, for each d, the outer * inner elements
// (o, d, i) in two deterministic stages: stage 1 splits them into chunks of fixed
// length and sums each chunk in double into a scratch slot (partial[d][chunk]);
// stage 2 adds a d's chunks in chunk order. The chunking depends only on the shape.
// Two stage-1 layouts keep reads coalesced:
//   rows (inner >= 32): a block per (d, chunk); threads walk consecutive i;
//   cols (inner < 32): a block per (32 d's, chunk); threads in x take consecutive d
//     (consecutive addresses when inner == 1), 8 threads in y split the chunk.
#include <cub/block/block_reduce.cuh>

#include "engine/cuda_check.cuh"
#include "layers/scale_cuda.h"

namespace coco {

namespace {

constexpr int64_t kChunk = 8192;     // elements (o, i) of one d per stage-1 block
constexpr int64_t kRowsInner = 32;   // inner >= this: rows layout
constexpr int kRowsBlock = 256;
constexpr int kColsX = 32, kColsY = 8;
// Below this element count a 32-bit index cannot overflow in a grid-stride step.
constexpr int64_t kMax32 = int64_t{1} << 31;

int64_t chunks_for(int64_t total) { return total <= 0 ? 1 : (total + kChunk - 1) / kChunk; }

// Elementwise kernels index with I = uint32_t where the element count allows (64-bit
// division is several times slower and would dominate these memory-bound loops).
template <typename I>
__global__ void scale_forward_kernel(float* y, const float* x, const float* s, const float* b, I n, I D,
                                     I inner) {
  for (I i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
    const I d = (i / inner) % D;
    y[i] = __fadd_rn(__fmul_rn(x[i], s[d]), b ? b[d] : 0.0f);
  }
}

template <typename I>
__global__ void scale_bottom_backward_kernel(float* dx, const float* dy, const float* s, I n, I D, I inner) {
  for (I i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
    dx[i] = __fmul_rn(dy[i], s[(i / inner) % D]);
}

// Stage 1, rows layout. Block b: d = b / chunks, chunk = b % chunks, covering the
// flattened (o, i) range [chunk * kChunk, ...). (o, i) advance by kRowsBlock per step
// without a division.
__global__ void scale_grad_rows_kernel(double* part_s, double* part_b, const float* dy, const float* x,
                                       int64_t outer, int64_t D, int64_t inner, int64_t chunks) {
  using Reduce = cub::BlockReduce<double, kRowsBlock>;
  __shared__ typename Reduce::TempStorage tmp;
  const int64_t d = blockIdx.x / chunks, chunk = blockIdx.x % chunks;
  const int64_t total = outer * inner;
  const int64_t begin = chunk * kChunk;
  const int64_t end = begin + kChunk < total ? begin + kChunk : total;
  const int64_t step_o = kRowsBlock / inner, step_i = kRowsBlock % inner;
  int64_t j = begin + threadIdx.x;
  int64_t o = j / inner, i = j % inner;
  double acc_s = 0, acc_b = 0;
  for (; j < end; j += kRowsBlock) {
    const int64_t idx = (o * D + d) * inner + i;
    const float g = dy[idx];
    if (part_s) acc_s += static_cast<double>(g) * x[idx];
    acc_b += g;
    o += step_o;
    i += step_i;
    if (i >= inner) i -= inner, ++o;
  }
  if (part_s) {
    acc_s = Reduce(tmp).Sum(acc_s);
    if (threadIdx.x == 0) part_s[d * chunks + chunk] = acc_s;
    __syncthreads();  // tmp is reused
  }
  if (part_b) {
    acc_b = Reduce(tmp).Sum(acc_b);
    if (threadIdx.x == 0) part_b[d * chunks + chunk] = acc_b;
  }
}

// Stage 1, cols layout. Block (tile, chunk) = (b / chunks, b % chunks); thread (tx, ty)
// takes d = tile * 32 + tx and the chunk's (o, i) positions ty, ty + 8, ...; the 8
// partial sums of a d then meet in shared memory in ty order.
__global__ void scale_grad_cols_kernel(double* part_s, double* part_b, const float* dy, const float* x,
                                       int64_t outer, int64_t D, int64_t inner, int64_t chunks) {
  __shared__ double sh_s[kColsY][kColsX];
  __shared__ double sh_b[kColsY][kColsX];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t tile = blockIdx.x / chunks, chunk = blockIdx.x % chunks;
  const int64_t d = tile * kColsX + tx;
  const int64_t total = outer * inner;
  const int64_t begin = chunk * kChunk;
  const int64_t end = begin + kChunk < total ? begin + kChunk : total;
  const int64_t step_o = kColsY / inner, step_i = kColsY % inner;
  double acc_s = 0, acc_b = 0;
  if (d < D) {
    int64_t j = begin + ty;
    int64_t o = j / inner, i = j % inner;
    for (; j < end; j += kColsY) {
      const int64_t idx = (o * D + d) * inner + i;
      const float g = dy[idx];
      if (part_s) acc_s += static_cast<double>(g) * x[idx];
      acc_b += g;
      o += step_o;
      i += step_i;
      if (i >= inner) i -= inner, ++o;
    }
  }
  sh_s[ty][tx] = acc_s;
  sh_b[ty][tx] = acc_b;
  __syncthreads();
  if (ty == 0 && d < D) {
    double s = 0, b = 0;
    for (int k = 0; k < kColsY; ++k) s += sh_s[k][tx], b += sh_b[k][tx];
    if (part_s) part_s[d * chunks + chunk] = s;
    if (part_b) part_b[d * chunks + chunk] = b;
  }
}

// Stage 2: one thread per d adds its chunks in order.
__global__ void scale_grad_finish_kernel(float* ds, float* db, const double* part_s, const double* part_b,
                                         int64_t D, int64_t chunks, bool accumulate_scale) {
  COCO_KERNEL_LOOP(d, D) {
    if (ds) {
      double acc = 0;
      for (int64_t c = 0; c < chunks; ++c) acc += part_s[d * chunks + c];
      ds[d] = accumulate_scale ? ds[d] + static_cast<float>(acc) : static_cast<float>(acc);
    }
    if (db) {
      double acc = 0;
      for (int64_t c = 0; c < chunks; ++c) acc += part_b[d * chunks + c];
      db[d] += static_cast<float>(acc);
    }
  }
}

}  // namespace

void scale_forward_cuda(float* y, const float* x, const float* s, const float* b, int64_t outer, int64_t D,
                        int64_t inner, cuda::Stream stream) {
  const int64_t n = outer * D * inner;
  if (n <= 0) return;
  if (n < kMax32)
    scale_forward_kernel<uint32_t><<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(
        y, x, s, b, static_cast<uint32_t>(n), static_cast<uint32_t>(D), static_cast<uint32_t>(inner));
  else
    scale_forward_kernel<int64_t><<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(y, x, s, b, n, D, inner);
  cuda::check_launch("scale_forward_kernel");
}

void scale_bottom_backward_cuda(float* dx, const float* dy, const float* s, int64_t outer, int64_t D,
                                int64_t inner, cuda::Stream stream) {
  const int64_t n = outer * D * inner;
  if (n <= 0) return;
  if (n < kMax32)
    scale_bottom_backward_kernel<uint32_t><<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(
        dx, dy, s, static_cast<uint32_t>(n), static_cast<uint32_t>(D), static_cast<uint32_t>(inner));
  else
    scale_bottom_backward_kernel<int64_t><<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(dx, dy, s, n, D,
                                                                                              inner);
  cuda::check_launch("scale_bottom_backward_kernel");
}

size_t scale_param_backward_workspace_bytes(int64_t outer, int64_t D, int64_t inner) {
  return 2 * static_cast<size_t>(D) * static_cast<size_t>(chunks_for(outer * inner)) * sizeof(double);
}

void scale_param_backward_cuda(float* ds, float* db, const float* dy, const float* x, int64_t outer, int64_t D,
                               int64_t inner, bool accumulate_scale, void* workspace, cuda::Stream stream) {
  if (D <= 0 || (!ds && !db)) return;
  const int64_t chunks = chunks_for(outer * inner);
  double* part_s = static_cast<double*>(workspace);
  double* part_b = part_s + D * chunks;
  if (outer * inner <= 0) {
    // Nothing to sum: the sums are 0 (a learned scale's and the bias's diff unchanged).
    if (ds && !accumulate_scale) COCO_CUDA_CHECK(cudaMemsetAsync(ds, 0, D * sizeof(float), stream));
    return;
  }
  if (inner >= kRowsInner) {
    const int64_t blocks = D * chunks;
    COCO_CHECK(blocks <= 0x7fffffff, "Scale gradient: too many blocks (", blocks, ")");
    scale_grad_rows_kernel<<<static_cast<unsigned>(blocks), kRowsBlock, 0, stream>>>(
        ds ? part_s : nullptr, db ? part_b : nullptr, dy, x, outer, D, inner, chunks);
    cuda::check_launch("scale_grad_rows_kernel");
  } else {
    const int64_t blocks = (D + kColsX - 1) / kColsX * chunks;
    COCO_CHECK(blocks <= 0x7fffffff, "Scale gradient: too many blocks (", blocks, ")");
    scale_grad_cols_kernel<<<static_cast<unsigned>(blocks), dim3(kColsX, kColsY), 0, stream>>>(
        ds ? part_s : nullptr, db ? part_b : nullptr, dy, x, outer, D, inner, chunks);
    cuda::check_launch("scale_grad_cols_kernel");
  }
  scale_grad_finish_kernel<<<cuda::blocks_for(D), cuda::kThreads, 0, stream>>>(ds, db, part_s, part_b, D, chunks,
                                                                               accumulate_scale);
  cuda::check_launch("scale_grad_finish_kernel");
}

}  // namespace coco
