// CUDA kernels of the CocoLoss head (launchers declared in layers/coco_loss_cuda.h).
//
// Every reduction here is deterministic: a fixed warp butterfly and a fixed order
// over the warps of one block, never atomics, so two runs give the same bits.
// Row-wise sums that the CPU accumulates in double (norms, the projections' dot
// products, the loss) are accumulated in double here as well.
#include <cuda_runtime.h>

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "engine/cuda_check.cuh"
#include "engine/norm.h"
#include "layers/coco_loss_cuda.h"

namespace coco {

namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = cuda::kThreads / kWarp;

// ---- launch geometry ----

// Warp-per-row kernels: 8 rows per block, grid-stride over the rest.
unsigned warp_row_blocks(int64_t rows) {
  const int64_t b = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  return static_cast<unsigned>(b < 1 ? 1 : (b > (1 << 20) ? (1 << 20) : b));
}
// Block-per-row kernels.
unsigned block_row_blocks(int64_t rows) {
  return static_cast<unsigned>(rows < 1 ? 1 : (rows > (1 << 20) ? (1 << 20) : rows));
}

// ---- reductions ----

struct ArgMax {
  float v;
  int64_t j;
};

__device__ __forceinline__ float shfl_xor(float v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
__device__ __forceinline__ double shfl_xor(double v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
__device__ __forceinline__ int shfl_xor(int v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
__device__ __forceinline__ ArgMax shfl_xor(ArgMax a, int o) {
  return {__shfl_xor_sync(0xffffffffu, a.v, o), static_cast<int64_t>(__shfl_xor_sync(0xffffffffu, static_cast<long long>(a.j), o))};
}

struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
  __device__ int operator()(int a, int b) const { return a > b ? a : b; }
};
// The larger value; among equal values the lower index (the first maximum).
struct ArgMaxOp {
  __device__ ArgMax operator()(ArgMax a, ArgMax b) const { return (b.v > a.v || (b.v == a.v && b.j < a.j)) ? b : a; }
};

// Over the 32 lanes of a warp. Addition and max are commutative, so the butterfly
// leaves the same bits in every lane.
template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v = op(v, shfl_xor(v, o));
  return v;
}

// Over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the
// result, combined in the same order by all. `shared` holds 32 values.
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T* shared) {
  v = warp_reduce(v, op);
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  __syncthreads();  // a previous call's readers are done with `shared`
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / kWarp;
  T r = shared[0];
  for (int w = 1; w < warps; ++w) r = op(r, shared[w]);
  return r;
}

// The column of row i's label within the chunk [first_class, first_class + t), or
// -1. A label that is not an integer (or NaN) is in no chunk; coco_head_loss turns
// it into a NaN loss. Labels are below 2^24, so float compares are exact.
__device__ __forceinline__ int64_t target_column(float label, int64_t first_class, int64_t t) {
  const float lo = static_cast<float>(first_class);
  if (!(label >= lo && label < lo + static_cast<float>(t)) || label != floorf(label)) return -1;
  return static_cast<int64_t>(label) - first_class;
}

// ---- kernels ----

// f (Ml, D) = s_i x_i; x_inv_norm (Ml). One warp per row.
__global__ void features_kernel(float* f, float* x_inv_norm, const float* x, int64_t Ml, int64_t D, float alpha,
                                bool cosine) {
  const int lane = threadIdx.x % kWarp;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp; i < Ml; i += stride) {
    const float* xi = x + i * D;
    float inv = 1.f;
    if (cosine) {
      double ss = 0;
      for (int64_t d = lane; d < D; d += kWarp) ss += static_cast<double>(xi[d]) * xi[d];
      ss = warp_reduce(ss, SumOp());
      inv = 1.0f / sqrtf(static_cast<float>(ss) + static_cast<float>(kNormEpsilon));
    }
    if (lane == 0) x_inv_norm[i] = inv;
    const float s = cosine ? alpha * inv : 1.f;
    float* fi = f + i * D;
    for (int64_t d = lane; d < D; d += kWarp) fi[d] = s * xi[d];
  }
}

// c_inv_norm (Kr); with renormalize c's rows become unit rows. One warp per row.
__global__ void centroid_norms_kernel(float* c, float* c_inv_norm, int64_t Kr, int64_t D, bool cosine,
                                      bool renormalize) {
  const int lane = threadIdx.x % kWarp;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp; k < Kr; k += stride) {
    float* ck = c + k * D;
    if (!cosine) {
      if (lane == 0) c_inv_norm[k] = 1.f;
      continue;
    }
    double ss = 0;
    for (int64_t d = lane; d < D; d += kWarp) ss += static_cast<double>(ck[d]) * ck[d];
    ss = warp_reduce(ss, SumOp());
    const float inv = 1.0f / sqrtf(static_cast<float>(ss) + static_cast<float>(kNormEpsilon));
    if (renormalize) {
      for (int64_t d = lane; d < D; d += kWarp) ck[d] *= inv;
      if (lane == 0) c_inv_norm[k] = 1.f;
    } else if (lane == 0) {
      c_inv_norm[k] = inv;
    }
  }
}

// c_hat (t, D) = c (t, D) * c_inv_norm[row].
__global__ void unit_centroids_kernel(float* c_hat, const float* c, const float* c_inv_norm, int64_t t, int64_t D) {
  COCO_KERNEL_LOOP(idx, t * D) c_hat[idx] = c[idx] * c_inv_norm[idx / D];
}

__global__ void init_stats_kernel(float* row_max, float* sum_target, float* best, float* best_class, int64_t M) {
  COCO_KERNEL_LOOP(i, M) {
    row_max[i] = -INFINITY;
    sum_target[i] = 0.f;
    sum_target[M + i] = 0.f;
    best[i] = -INFINITY;
    best_class[i] = 0.f;
  }
}

// One chunk's online softmax step. One block per row of z (M, t).
__global__ void chunk_stats_kernel(float* row_max, float* row_sum, float* target, float* best, float* best_class,
                                   const float* z, const float* labels, int64_t M, int64_t t, int64_t first_class,
                                   bool want_accuracy, CocoMarginParams mp) {
  __shared__ ArgMax sh_arg[32];
  __shared__ float sh_f[32];
  const bool has_margin = mp.kind != CocoMarginKind::kNone;
  for (int64_t i = blockIdx.x; i < M; i += gridDim.x) {
    const float* zi = z + i * t;
    const int64_t yl = target_column(labels[i], first_class, t);
    const bool has_target = yl >= 0;
    const bool margin = has_margin && has_target;
    // Pass 1: the raw maximum (and its first column, for the accuracy) and the
    // maximum over the other columns (the target enters with its margin).
    ArgMax all{-INFINITY, INT64_MAX};
    float other = -INFINITY;
    for (int64_t j = threadIdx.x; j < t; j += blockDim.x) {
      const float v = zi[j];
      all = ArgMaxOp()(all, ArgMax{v, j});
      if (j != yl) other = fmaxf(other, v);
    }
    all = block_reduce(all, ArgMaxOp(), sh_arg);
    const float cm = all.v;
    float zt = 0.f, mm = cm;
    if (has_target) {
      zt = apply_margin(zi[yl], mp);
      if (margin) mm = fmaxf(block_reduce(other, MaxOp(), sh_f), zt);
    }
    const float old_max = row_max[i];
    const float nm = fmaxf(old_max, mm);
    // Pass 2: the sum of exp(z - new max), the target's term with its margin.
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < t; j += blockDim.x) s += expf(((margin && j == yl) ? zt : zi[j]) - nm);
    s = block_reduce(s, SumOp(), sh_f);
    if (threadIdx.x == 0) {
      row_sum[i] = static_cast<float>(static_cast<double>(row_sum[i]) * exp(static_cast<double>(old_max) - nm) + s);
      row_max[i] = nm;
      if (has_target) target[i] += zt;
      if (want_accuracy && cm > best[i]) {
        best[i] = cm;
        best_class[i] = static_cast<float>(first_class + all.j);
      }
    }
  }
}

__global__ void rescale_sums_kernel(float* row_sum, const float* local_max, const float* row_max, int64_t M) {
  COCO_KERNEL_LOOP(i, M) {
    row_sum[i] = static_cast<float>(row_sum[i] * exp(static_cast<double>(local_max[i]) - row_max[i]));
  }
}

__global__ void shard_columns_kernel(float* columns, const int32_t* ids, int64_t M, int64_t shard_start,
                                     int64_t shard_count, int64_t K) {
  COCO_KERNEL_LOOP(i, M) {
    const int64_t y = ids[i], c = y - shard_start;
    columns[i] = y < 0 || y >= K ? NAN : c >= 0 && c < shard_count ? static_cast<float>(c) : -1.f;
  }
}

// One block: loss = mean(log s + m - target), NaN for a NaN label (no class).
__global__ void loss_kernel(float* loss, const float* row_sum, const float* row_max, const float* target,
                            const float* labels, int64_t M) {
  __shared__ double sh_d[32];
  __shared__ int sh_i[32];
  double acc = 0;
  int bad = 0;
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
    acc += log(static_cast<double>(row_sum[i])) + row_max[i] - target[i];
    if (isnan(labels[i])) bad = 1;
  }
  acc = block_reduce(acc, SumOp(), sh_d);
  bad = block_reduce(bad, MaxOp(), sh_i);
  if (threadIdx.x == 0) loss[0] = bad ? NAN : static_cast<float>(acc / M);
}

__global__ void accuracy_candidates_kernel(float* cand, const float* best, const float* raw_max,
                                           const float* best_class, const float* labels, int rank, int64_t M) {
  COCO_KERNEL_LOOP(i, M) {
    cand[i] = best[i] == raw_max[i] ? static_cast<float>(2 * rank + (best_class[i] == labels[i] ? 0 : 1)) : INFINITY;
  }
}

__global__ void accuracy_kernel(float* accuracy, const float* cand, int64_t M) {
  __shared__ int sh_i[32];
  int correct = 0;
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x)
    correct += isfinite(cand[i]) && static_cast<int64_t>(cand[i]) % 2 == 0;
  correct = block_reduce(correct, SumOp(), sh_i);
  if (threadIdx.x == 0) accuracy[0] = static_cast<float>(correct) / static_cast<float>(M);
}

// G in place over z (M, t): columns over x, rows over y.
__global__ void softmax_grad_kernel(float* z, const float* row_max, const float* row_sum, const float* labels,
                                    int64_t M, int64_t t, int64_t first_class, float inv_m, CocoMarginParams mp) {
  const bool has_margin = mp.kind != CocoMarginKind::kNone;
  for (int64_t i = blockIdx.y; i < M; i += gridDim.y) {
    const float m = row_max[i];
    const float scale = inv_m / row_sum[i];
    const int64_t yl = target_column(labels[i], first_class, t);
    float* zi = z + i * t;
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < t;
         j += static_cast<int64_t>(blockDim.x) * gridDim.x) {
      const float v = zi[j];
      float g = expf(v - m) * scale;
      if (j == yl) {
        const float p = has_margin ? expf(apply_margin(v, mp) - m) * scale : g;
        g = (p - inv_m) * margin_slope(v, mp);
      }
      zi[j] = g;
    }
  }
}

// dc (t, D) += weight * ... per row. One warp per row.
__global__ void centroid_grad_kernel(float* dc, const float* h, const float* u, const float* c_inv_norm, int64_t t,
                                     int64_t D, float weight, bool exact) {
  const int lane = threadIdx.x % kWarp;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp; k < t; k += stride) {
    const float* hk = h + k * D;
    float* g = dc + k * D;
    if (exact) {
      const float* uk = u + k * D;
      double dot = 0;
      for (int64_t d = lane; d < D; d += kWarp) dot += static_cast<double>(uk[d]) * hk[d];
      const float uh = static_cast<float>(warp_reduce(dot, SumOp()));
      const float inv = c_inv_norm[k];
      for (int64_t d = lane; d < D; d += kWarp) g[d] += weight * inv * (hk[d] - uk[d] * uh);
    } else {
      for (int64_t d = lane; d < D; d += kWarp) g[d] += weight * hk[d];
    }
  }
}

// ---- the fixed shift ----

__device__ __forceinline__ float scaled(const float* zi, const float* cs, int64_t j) {
  return cs ? zi[j] * cs[j] : zi[j];
}

// One block per row of z (M, t): exp(v - shift) summed (kept in place with keep),
// the target's column on its own with its margin.
__global__ void exp_stats_kernel(float* z, float* row_sum, float* target, float* raw_target, float* best,
                                 float* best_class, const float* cs, const float* labels, int64_t M, int64_t t,
                                 int64_t first_class, float shift, bool keep, bool want_accuracy,
                                 CocoMarginParams mp) {
  __shared__ ArgMax sh_arg[32];
  __shared__ float sh_f[32];
  for (int64_t i = blockIdx.x; i < M; i += gridDim.x) {
    float* zi = z + i * t;
    const int64_t yl = target_column(labels[i], first_class, t);
    if (want_accuracy) {
      ArgMax all{-INFINITY, INT64_MAX};
      for (int64_t j = threadIdx.x; j < t; j += blockDim.x) all = ArgMaxOp()(all, ArgMax{scaled(zi, cs, j), j});
      all = block_reduce(all, ArgMaxOp(), sh_arg);
      if (threadIdx.x == 0 && all.v > best[i]) {
        best[i] = all.v;
        best_class[i] = static_cast<float>(first_class + all.j);
      }
    }
    const float v_target = yl >= 0 ? scaled(zi, cs, yl) : 0.f;  // read before any thread writes the row
    __syncthreads();
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < t; j += blockDim.x) {
      if (j == yl) continue;
      const float e = expf(scaled(zi, cs, j) - shift);
      if (keep) zi[j] = e;
      s += e;
    }
    s = block_reduce(s, SumOp(), sh_f);
    if (threadIdx.x == 0) {
      if (yl >= 0) {
        const float zt = apply_margin(v_target, mp);
        s += expf(zt - shift);
        target[i] += zt;
        raw_target[i] = v_target;
      }
      row_sum[i] += s;
    }
  }
}

// G' in place over z (M, t): columns over x, rows over y.
__global__ void fixed_shift_grad_kernel(float* z, const float* row_sum, const float* raw_target, const float* cs,
                                        const float* labels, int64_t M, int64_t t, int64_t first_class, float shift,
                                        float inv_m, bool z_is_exp, CocoMarginParams mp) {
  for (int64_t i = blockIdx.y; i < M; i += gridDim.y) {
    const float scale = inv_m / row_sum[i];
    const int64_t yl = target_column(labels[i], first_class, t);
    float* zi = z + i * t;
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < t;
         j += static_cast<int64_t>(blockDim.x) * gridDim.x) {
      float g;
      if (j == yl) {
        const float r = raw_target[i];
        g = (expf(apply_margin(r, mp) - shift) * scale - inv_m) * margin_slope(r, mp);
      } else {
        g = (z_is_exp ? zi[j] : expf(scaled(zi, cs, j) - shift)) * scale;
      }
      zi[j] = cs ? g * cs[j] : g;
    }
  }
}

// dc (t, D) += weight (h - c inv² (c·h)) per row. One warp per row.
__global__ void centroid_grad_scaled_kernel(float* dc, const float* h, const float* c, const float* c_inv_norm,
                                            int64_t t, int64_t D, float weight, bool accumulate) {
  const int lane = threadIdx.x % kWarp;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp; k < t; k += stride) {
    const float* hk = h + k * D;
    const float* ck = c + k * D;
    float* g = dc + k * D;
    double dot = 0;
    for (int64_t d = lane; d < D; d += kWarp) dot += static_cast<double>(ck[d]) * hk[d];
    const float inv = c_inv_norm[k];
    const float q = static_cast<float>(warp_reduce(dot, SumOp())) * inv * inv;
    // The reduction above read all of c's row: with dc == c each lane now reads
    // ck[d] and writes g[d] at the same d.
    for (int64_t d = lane; d < D; d += kWarp) g[d] = (accumulate ? g[d] : 0.f) + weight * (hk[d] - ck[d] * q);
  }
}

// One block: out = the number of x below threshold.
__global__ void count_below_kernel(float* out, const float* x, int64_t n, float threshold) {
  __shared__ int sh_i[32];
  int below = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) below += x[i] < threshold;
  below = block_reduce(below, SumOp(), sh_i);
  if (threadIdx.x == 0) out[0] = static_cast<float>(below);
}

// ---- class sampling ----

// dst (n, D) = src rows rows[r]: one block row per sampled row.
__global__ void gather_rows_kernel(float* dst, const float* src, const float* rows, int64_t n, int64_t D) {
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const float* s = src + static_cast<int64_t>(rows[r]) * D;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) dst[r * D + d] = s[d];
  }
}

__global__ void rows_to_classes_kernel(float* cls, const float* rows, int64_t first_class, int64_t n, int64_t M) {
  COCO_KERNEL_LOOP(i, M) {
    const int64_t k = static_cast<int64_t>(cls[i]);
    if (k >= 0 && k < n) cls[i] = static_cast<float>(first_class + static_cast<int64_t>(rows[k]));
  }
}

// g (Ml, D) = alpha inv (g - x̂ (x̂·g)) in place. One warp per row; each lane
// writes only the elements it read.
__global__ void project_features_kernel(float* g, const float* x, const float* x_inv_norm, int64_t Ml, int64_t D,
                                        float alpha) {
  const int lane = threadIdx.x % kWarp;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp; i < Ml; i += stride) {
    const float* xi = x + i * D;
    float* gi = g + i * D;
    double dot = 0;
    for (int64_t d = lane; d < D; d += kWarp) dot += static_cast<double>(xi[d]) * gi[d];
    const float inv = x_inv_norm[i];
    const float xg = static_cast<float>(warp_reduce(dot, SumOp())) * inv;  // x̂·g
    for (int64_t d = lane; d < D; d += kWarp) gi[d] = alpha * inv * (gi[d] - xi[d] * inv * xg);
  }
}

__global__ void scale_by_top_diff_kernel(float* dx, const float* g, const float* w, int64_t n) {
  const float s = w[0];
  COCO_KERNEL_LOOP(i, n) dx[i] = s * g[i];
}

}  // namespace

// ---- launchers ----

void coco_head_features(float* f, float* x_inv_norm, const float* x, int64_t Ml, int64_t D, float alpha,
                        bool cosine, cuda::Stream stream) {
  if (Ml == 0) return;
  features_kernel<<<warp_row_blocks(Ml), cuda::kThreads, 0, stream>>>(f, x_inv_norm, x, Ml, D, alpha, cosine);
  cuda::check_launch("coco_head features_kernel");
}

void coco_head_centroid_norms(float* c, float* c_inv_norm, int64_t Kr, int64_t D, bool cosine, bool renormalize,
                              cuda::Stream stream) {
  if (Kr == 0) return;
  centroid_norms_kernel<<<warp_row_blocks(Kr), cuda::kThreads, 0, stream>>>(c, c_inv_norm, Kr, D, cosine,
                                                                            renormalize);
  cuda::check_launch("coco_head centroid_norms_kernel");
}

void coco_head_unit_centroids(float* c_hat, const float* c, const float* c_inv_norm, int64_t t, int64_t D,
                              cuda::Stream stream) {
  if (t * D == 0) return;
  unit_centroids_kernel<<<cuda::blocks_for(t * D), cuda::kThreads, 0, stream>>>(c_hat, c, c_inv_norm, t, D);
  cuda::check_launch("coco_head unit_centroids_kernel");
}

void coco_head_init_stats(float* row_max, float* sum_target, float* best, float* best_class, int64_t M,
                          cuda::Stream stream) {
  if (M == 0) return;
  init_stats_kernel<<<cuda::blocks_for(M), cuda::kThreads, 0, stream>>>(row_max, sum_target, best, best_class, M);
  cuda::check_launch("coco_head init_stats_kernel");
}

void coco_head_chunk_stats(float* row_max, float* row_sum, float* target, float* best, float* best_class,
                           const float* z, const float* labels, int64_t M, int64_t t, int64_t first_class,
                           bool want_accuracy, const CocoMarginParams& margin, cuda::Stream stream) {
  if (M == 0 || t == 0) return;
  chunk_stats_kernel<<<block_row_blocks(M), cuda::kThreads, 0, stream>>>(
      row_max, row_sum, target, best, best_class, z, labels, M, t, first_class, want_accuracy, margin);
  cuda::check_launch("coco_head chunk_stats_kernel");
}

void coco_head_rescale_sums(float* row_sum, const float* local_max, const float* row_max, int64_t M,
                            cuda::Stream stream) {
  if (M == 0) return;
  rescale_sums_kernel<<<cuda::blocks_for(M), cuda::kThreads, 0, stream>>>(row_sum, local_max, row_max, M);
  cuda::check_launch("coco_head rescale_sums_kernel");
}

void coco_head_shard_columns(float* columns, const int32_t* ids, int64_t M, int64_t shard_start,
                             int64_t shard_count, int64_t K, cuda::Stream stream) {
  if (M == 0) return;
  shard_columns_kernel<<<cuda::blocks_for(M), cuda::kThreads, 0, stream>>>(columns, ids, M, shard_start,
                                                                            shard_count, K);
  cuda::check_launch("coco_head shard_columns_kernel");
}

void coco_head_loss(float* loss, const float* row_sum, const float* row_max, const float* target,
                    const float* labels, int64_t M, cuda::Stream stream) {
  loss_kernel<<<1, cuda::kThreads, 0, stream>>>(loss, row_sum, row_max, target, labels, M);
  cuda::check_launch("coco_head loss_kernel");
}

void coco_head_accuracy_candidates(float* cand, const float* best, const float* raw_max, const float* best_class,
                                   const float* labels, int rank, int64_t M, cuda::Stream stream) {
  if (M == 0) return;
  accuracy_candidates_kernel<<<cuda::blocks_for(M), cuda::kThreads, 0, stream>>>(cand, best, raw_max, best_class,
                                                                                  labels, rank, M);
  cuda::check_launch("coco_head accuracy_candidates_kernel");
}

void coco_head_accuracy(float* accuracy, const float* cand, int64_t M, cuda::Stream stream) {
  accuracy_kernel<<<1, cuda::kThreads, 0, stream>>>(accuracy, cand, M);
  cuda::check_launch("coco_head accuracy_kernel");
}

void coco_head_softmax_grad(float* z, const float* row_max, const float* row_sum, const float* labels, int64_t M,
                            int64_t t, int64_t first_class, float inv_m, const CocoMarginParams& margin,
                            cuda::Stream stream) {
  if (M == 0 || t == 0) return;
  const int64_t bx = (t + cuda::kThreads - 1) / cuda::kThreads;
  const dim3 grid(static_cast<unsigned>(bx > 64 ? 64 : bx), static_cast<unsigned>(M > 65535 ? 65535 : M));
  softmax_grad_kernel<<<grid, cuda::kThreads, 0, stream>>>(z, row_max, row_sum, labels, M, t, first_class, inv_m,
                                                            margin);
  cuda::check_launch("coco_head softmax_grad_kernel");
}

void coco_head_centroid_grad(float* dc, const float* h, const float* u, const float* c_inv_norm, int64_t t,
                             int64_t D, float weight, bool exact, cuda::Stream stream) {
  if (t == 0) return;
  centroid_grad_kernel<<<warp_row_blocks(t), cuda::kThreads, 0, stream>>>(dc, h, u, c_inv_norm, t, D, weight, exact);
  cuda::check_launch("coco_head centroid_grad_kernel");
}

void coco_head_exp_stats(float* z, float* row_sum, float* target, float* raw_target, float* best,
                         float* best_class, const float* col_scale, const float* labels, int64_t M, int64_t t,
                         int64_t first_class, float shift, bool keep, bool want_accuracy,
                         const CocoMarginParams& margin, cuda::Stream stream) {
  if (M == 0 || t == 0) return;
  exp_stats_kernel<<<block_row_blocks(M), cuda::kThreads, 0, stream>>>(z, row_sum, target, raw_target, best,
                                                                       best_class, col_scale, labels, M, t,
                                                                       first_class, shift, keep, want_accuracy,
                                                                       margin);
  cuda::check_launch("coco_head exp_stats_kernel");
}

void coco_head_fixed_shift_grad(float* z, const float* row_sum, const float* raw_target, const float* col_scale,
                                const float* labels, int64_t M, int64_t t, int64_t first_class, float shift,
                                float inv_m, bool z_is_exp, const CocoMarginParams& margin, cuda::Stream stream) {
  if (M == 0 || t == 0) return;
  const int64_t bx = (t + cuda::kThreads - 1) / cuda::kThreads;
  const dim3 grid(static_cast<unsigned>(bx > 64 ? 64 : bx), static_cast<unsigned>(M > 65535 ? 65535 : M));
  fixed_shift_grad_kernel<<<grid, cuda::kThreads, 0, stream>>>(z, row_sum, raw_target, col_scale, labels, M, t,
                                                                first_class, shift, inv_m, z_is_exp, margin);
  cuda::check_launch("coco_head fixed_shift_grad_kernel");
}

void coco_head_centroid_grad_scaled(float* dc, const float* h, const float* c, const float* c_inv_norm, int64_t t,
                                    int64_t D, float weight, bool accumulate, cuda::Stream stream) {
  if (t == 0) return;
  centroid_grad_scaled_kernel<<<warp_row_blocks(t), cuda::kThreads, 0, stream>>>(dc, h, c, c_inv_norm, t, D,
                                                                                 weight, accumulate);
  cuda::check_launch("coco_head centroid_grad_scaled_kernel");
}

void coco_head_count_below(float* out, const float* x, int64_t n, float threshold, cuda::Stream stream) {
  count_below_kernel<<<1, cuda::kThreads, 0, stream>>>(out, x, n, threshold);
  cuda::check_launch("coco_head count_below_kernel");
}

void coco_head_gather_rows(float* dst, const float* src, const float* rows, int64_t n, int64_t D,
                           cuda::Stream stream) {
  if (n == 0) return;
  gather_rows_kernel<<<block_row_blocks(n), cuda::kThreads, 0, stream>>>(dst, src, rows, n, D);
  cuda::check_launch("coco_head gather_rows_kernel");
}

void coco_head_rows_to_classes(float* cls, const float* rows, int64_t first_class, int64_t n, int64_t M,
                               cuda::Stream stream) {
  if (M == 0) return;
  rows_to_classes_kernel<<<cuda::blocks_for(M), cuda::kThreads, 0, stream>>>(cls, rows, first_class, n, M);
  cuda::check_launch("coco_head rows_to_classes_kernel");
}

void coco_head_project_features(float* g, const float* x, const float* x_inv_norm, int64_t Ml, int64_t D,
                                float alpha, cuda::Stream stream) {
  if (Ml == 0) return;
  project_features_kernel<<<warp_row_blocks(Ml), cuda::kThreads, 0, stream>>>(g, x, x_inv_norm, Ml, D, alpha);
  cuda::check_launch("coco_head project_features_kernel");
}

void coco_head_scale_by_top_diff(float* dx, const float* g, const float* w, int64_t n, cuda::Stream stream) {
  if (n == 0) return;
  scale_by_top_diff_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(dx, g, w, n);
  cuda::check_launch("coco_head scale_by_top_diff_kernel");
}

void coco_head_read_to_host(float* host, const float* dev, int64_t n, cuda::Stream stream) {
  if (n == 0) return;
  COCO_CUDA_CHECK(cudaMemcpyAsync(host, dev, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToHost, stream));
  cuda::wait(stream, "the CocoLoss head's read back to the host");
}

}  // namespace coco
