// Launchers of the CocoLoss head's CUDA kernels (layers/coco_loss_layer.cu).
//
// Plain C++ (no CUDA include): the CUDA bodies of the head's steps
// (layers/coco_head_cuda_ops.cpp) call these and cuda_gemm; the CPU bodies with the
// same contracts are in layers/coco_head_cpu_ops.cpp. Every pointer is a device
// pointer; every launcher returns without waiting, except coco_head_read_to_host.
// Arguments: outputs, inputs, sizes, then the stream. Shapes: M global batch, M_l
// local batch, D feature size, t classes of a chunk, K_r classes of this rank's
// shard, K all classes. Labels are int32 class ids until coco_head_shard_columns
// makes them float columns of this rank's shard (-1: another rank's; NaN: no class).
#pragma once

#include <cstdint>

#include "engine/cuda_runtime.h"
#include "layers/coco_margin.h"

namespace coco {

// f (M_l, D) = s_i x_i with s_i = alpha / sqrt(||x_i||² + eps) (cosine) or 1;
// x_inv_norm (M_l) = 1 / sqrt(||x_i||² + eps) (cosine) or 1. Both written (=).
void coco_head_features(float* f, float* x_inv_norm, const float* x, int64_t Ml, int64_t D, float alpha,
                        bool cosine, cuda::Stream stream);

// c_inv_norm (K_r) = 1 / sqrt(||c_k||² + eps) (cosine) or 1 (=). With renormalize,
// the rows of c (K_r, D) are rewritten as unit rows and c_inv_norm is 1.
void coco_head_centroid_norms(float* c, float* c_inv_norm, int64_t Kr, int64_t D, bool cosine, bool renormalize,
                              cuda::Stream stream);

// c_hat (t, D) = c (t, D) * c_inv_norm[k] per row (=).
void coco_head_unit_centroids(float* c_hat, const float* c, const float* c_inv_norm, int64_t t, int64_t D,
                              cuda::Stream stream);

// row_max (M) = -inf, sum_target (2M) = 0, best (M) = -inf, best_class (M) = 0.
void coco_head_init_stats(float* row_max, float* sum_target, float* best, float* best_class, int64_t M,
                          cuda::Stream stream);

// One chunk of the online softmax over z (M, t), the logits of classes
// [first_class, first_class + t): per row the running max row_max (M) and the
// rescaled running sum row_sum (M) (both updated), the target logit with its
// margin added to target (M) where the row's label is in the chunk (+=), and, with
// want_accuracy, the best raw logit best (M) and its class best_class (M) (first
// maximum; updated where it improves).
void coco_head_chunk_stats(float* row_max, float* row_sum, float* target, float* best, float* best_class,
                           const float* z, const float* labels, int64_t M, int64_t t, int64_t first_class,
                           bool want_accuracy, const CocoMarginParams& margin, cuda::Stream stream);

// row_sum (M) *= exp(local_max - row_max): the local sums rescaled to the global max.
void coco_head_rescale_sums(float* row_sum, const float* local_max, const float* row_max, int64_t M,
                            cuda::Stream stream);

// columns (M) = ids - shard_start as floats where the id is in the shard, -1 where
// it is another rank's class, NaN where it is no class in [0, K) (=).
void coco_head_shard_columns(float* columns, const int32_t* ids, int64_t M, int64_t shard_start,
                             int64_t shard_count, int64_t K, cuda::Stream stream);

// loss (1) = mean_i(log row_sum_i + row_max_i - target_i) (=); NaN when a label
// (a shard column) is NaN, i.e. no class (the host cannot be told without a copy;
// the NaN loss is what the trainer's non-finite check reports).
void coco_head_loss(float* loss, const float* row_sum, const float* row_max, const float* target,
                    const float* labels, int64_t M, cuda::Stream stream);

// cand (M) = 2 rank + (best_class != label) where best equals the global raw_max,
// else +inf (=).
void coco_head_accuracy_candidates(float* cand, const float* best, const float* raw_max, const float* best_class,
                                   const float* labels, int rank, int64_t M, cuda::Stream stream);
// accuracy (1) = the share of cand that is even (=).
void coco_head_accuracy(float* accuracy, const float* cand, int64_t M, cuda::Stream stream);

// z (M, t) = G = (softmax - onehot) / M in place, the target entry times the
// margin's slope: softmax = exp(z - row_max) / row_sum with row_max, row_sum global.
void coco_head_softmax_grad(float* z, const float* row_max, const float* row_sum, const float* labels, int64_t M,
                            int64_t t, int64_t first_class, float inv_m, const CocoMarginParams& margin,
                            cuda::Stream stream);

// dc (t, D) += weight * inv_k (h - u (u·h)) per row (exact: the Jacobian of the
// normalisation), or += weight * h (renormalize, inner product).
// h = dL/dĉ (t, D), u = ĉ (t, D), c_inv_norm (t).
void coco_head_centroid_grad(float* dc, const float* h, const float* u, const float* c_inv_norm, int64_t t,
                             int64_t D, float weight, bool exact, cuda::Stream stream);

// ---- the fixed shift (docs/DESIGN.md, "The fixed shift") ----
// z (M, t) is f times the raw centroid rows of classes [first_class, first_class + t);
// the logits are v_ij = z_ij * col_scale[j] (col_scale null: v = z). Per row:
// row_sum += sum_j exp(v_ij - shift), the target's term with its margin; where the
// label y is in the chunk, target += margin(v_iy) and raw_target = v_iy (=); with
// want_accuracy, best/best_class as coco_head_chunk_stats (raw v). With keep,
// z_ij = exp(v_ij - shift) in place for j != y (the target's entry is left as it
// was: the backward takes it from raw_target).
void coco_head_exp_stats(float* z, float* row_sum, float* target, float* raw_target, float* best,
                         float* best_class, const float* col_scale, const float* labels, int64_t M, int64_t t,
                         int64_t first_class, float shift, bool keep, bool want_accuracy,
                         const CocoMarginParams& margin, cuda::Stream stream);

// z (M, t) = G' in place: G = (softmax - onehot)/M with softmax = exp(v - shift) /
// row_sum (row_sum global), the target's entry (exp(margin(raw_target) - shift) /
// row_sum - 1/M) * slope(raw_target); then G'_ij = G_ij * col_scale[j]. z holds
// exp(v - shift) (z_is_exp: exp_stats kept it) or the raw GEMM output.
void coco_head_fixed_shift_grad(float* z, const float* row_sum, const float* raw_target, const float* col_scale,
                                const float* labels, int64_t M, int64_t t, int64_t first_class, float shift,
                                float inv_m, bool z_is_exp, const CocoMarginParams& margin, cuda::Stream stream);

// dc (t, D) += weight (h - c inv² (c·h)) per row: h = G'ᵀ f (the gradient with
// respect to ĉ, already times inv), c the raw rows, inv = c_inv_norm (t). Without
// accumulate dc is written (=) and may be c itself.
void coco_head_centroid_grad_scaled(float* dc, const float* h, const float* c, const float* c_inv_norm, int64_t t,
                                    int64_t D, float weight, bool accumulate, cuda::Stream stream);

// out (1) = the number of x (n) below threshold, as a float (=).
void coco_head_count_below(float* out, const float* x, int64_t n, float threshold, cuda::Stream stream);

// ---- class sampling ----
// dst (n, D) = src rows rows[r] (floats holding row indices).
void coco_head_gather_rows(float* dst, const float* src, const float* rows, int64_t n, int64_t D,
                           cuda::Stream stream);
// cls[i] (M) = first_class + rows[cls[i]] where cls[i] is a position in [0, n).
void coco_head_rows_to_classes(float* cls, const float* rows, int64_t first_class, int64_t n, int64_t M,
                               cuda::Stream stream);

// g (M_l, D) = alpha inv_i (g - x̂_i (x̂_i·g)) in place: dL/df -> dL/dx (cosine).
void coco_head_project_features(float* g, const float* x, const float* x_inv_norm, int64_t Ml, int64_t D,
                                float alpha, cuda::Stream stream);

// dx (n) = w[0] * g (=); w is a device pointer (the loss top's diff).
void coco_head_scale_by_top_diff(float* dx, const float* g, const float* w, int64_t n, cuda::Stream stream);

// host (n) = dev (n), waiting for the stream: only the per-rank batch sizes of a
// multi-rank run travel this way (shapes the host needs to size the GEMMs).
void coco_head_read_to_host(float* host, const float* dev, int64_t n, cuda::Stream stream);

}  // namespace coco
