// CUDA launchers of the batch-normalisation math (layers/batch_norm_math.h) shared by
// BatchNorm and BN, and the running-statistics updates of each layer. Kernels live in
// layers/batch_norm_layer.cu. Data is viewed as (N, C, S), as on the CPU.
//
// Why they look like the CPU code: the CPU path is the oracle. Per-channel sums are
// accumulated in double, in a fixed order (per-chunk block reductions, then the
// chunks of a channel combined one after another by one thread), so a result does
// not depend on timing -- no float atomics anywhere -- and agrees with the CPU's
// double sums to float rounding. The elementwise steps use the CPU's float
// operations, unfused, so they agree bit for bit given the same statistics.
//
// All pointers are device pointers; everything runs on `stream` and returns without
// waiting. Scratch for the reductions comes from coco::cuda::workspace().
#pragma once

#include <cstdint>

#include "engine/cuda_runtime.h"

namespace coco {

// mean (C), var (C) = per-channel mean and biased variance (divide by N*S) of x
// (N, C, S); two passes in double (Chan's combination of per-chunk (sum, M2)).
void bn_batch_stats_cuda(float* mean, float* var, const float* x, int64_t N, int64_t C, int64_t S,
                         cuda::Stream stream);

// inv_std (C) = 1 / sqrt(var + eps) (in double, rounded once, as on the CPU), and
// x_hat (N, C, S) = (x - mean) * inv_std; y (may be null) gets a copy of x_hat. x may
// be y (in place); x_hat must be its own buffer.
void bn_normalize_cuda(float* inv_std, float* x_hat, float* y, const float* x, const float* mean,
                       const float* var, float eps, int64_t N, int64_t C, int64_t S, cuda::Stream stream);

// The BN layer's forward: as bn_normalize_cuda, and y = scale * x_hat + shift per channel.
void bn_normalize_affine_cuda(float* inv_std, float* x_hat, float* y, const float* x, const float* mean,
                              const float* var, const float* scale, const float* shift, float eps, int64_t N,
                              int64_t C, int64_t S, cuda::Stream stream);

// sum_dy (C) = sum over N, S of dy; sum_dy_xhat (C) = sum of dy * x_hat (double sums).
void bn_grad_sums_cuda(float* sum_dy, float* sum_dy_xhat, const float* dy, const float* x_hat, int64_t N,
                       int64_t C, int64_t S, cuda::Stream stream);

// dx (N, C, S) (=), as bn_backward_input: batch_stats true for the batch's statistics
//   dx = gamma * inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat)),
// false for stored ones (dx = gamma * inv_std * dy). gamma (C) may be null (1). dx may
// be dy.
void bn_backward_input_cuda(float* dx, const float* dy, const float* x_hat, const float* inv_std,
                            const float* gamma, const float* sum_dy, const float* sum_dy_xhat, bool batch_stats,
                            int64_t N, int64_t C, int64_t S, cuda::Stream stream);

// BatchNorm (Caffe's), training: factor (1) = maf * factor + 1; sum_mean (C) =
// maf * sum_mean + mean; sum_var (C) = maf * sum_var + correction * var.
void batch_norm_update_sums_cuda(float* sum_mean, float* sum_var, float* factor, const float* mean,
                                 const float* var, float maf, float correction, int64_t C, cuda::Stream stream);

// BatchNorm, stored statistics: k = factor == 0 ? 0 : 1 / factor (read on the
// device); mean (C) = k * sum_mean, var (C) = k * sum_var.
void batch_norm_global_stats_cuda(float* mean, float* var, const float* sum_mean, const float* sum_var,
                                  const float* factor, int64_t C, cuda::Stream stream);

// BN (the seed's), training with moving_average: running = decay * running +
// (1 - decay) * batch, for the mean and the variance (C each).
void bn_update_running_cuda(float* run_mean, float* run_var, const float* mean, const float* var, float decay,
                            int64_t C, cuda::Stream stream);

}  // namespace coco
