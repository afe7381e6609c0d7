// The compute bodies of the CocoLoss head's steps, one interface for both devices.
//
// Why: the head (layers/coco_head.h) is one orchestration -- plan, gather, chunk
// statistics, join ranks, backward chunks, scatter -- and only these bodies differ
// between the CPU and the GPU. The CPU tests therefore run the same sequence of
// steps, buffers and collectives the GPU runs. Each body's contract is written
// once, with the CUDA launchers (layers/coco_loss_cuda.h); the CPU bodies are in
// layers/coco_head_cpu_ops.cpp, the CUDA ones in layers/coco_head_cuda_ops.cpp.
// Every pointer lives on the ops' device; bodies return without waiting except
// read_to_host.
#pragma once

#include <cstdint>
#include <memory>

#include "engine/cuda_runtime.h"
#include "engine/math.h"
#include "layers/coco_margin.h"

namespace coco {

class CocoHeadOps {
 public:
  virtual ~CocoHeadOps() = default;

  // Labels as the steps below take them: each of the M int32 class ids as a column
  // of this rank's shard (id - shard.start, a float), -1 where the id is another
  // rank's class, NaN where it is no class in [0, K) (the loss turns NaN).
  virtual void shard_columns(float* columns, const int32_t* ids, int64_t M, int64_t shard_start,
                             int64_t shard_count, int64_t K) const = 0;

  // cpu_gemm_at / cuda_gemm_at: operands rounded to p, fp32 sums.
  virtual void gemm(Precision p, Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    const float* B, float beta, float* C) const = 0;
  virtual void copy(int64_t n, const float* x, float* y) const = 0;
  virtual void set(int64_t n, float value, float* x) const = 0;
  virtual void read_to_host(float* host, const float* src, int64_t n) const = 0;

  virtual void features(float* f, float* x_inv_norm, const float* x, int64_t Ml, int64_t D, float alpha,
                        bool cosine) const = 0;
  virtual void centroid_norms(float* c, float* c_inv_norm, int64_t Kr, int64_t D, bool cosine,
                              bool renormalize) const = 0;
  virtual void unit_centroids(float* c_hat, const float* c, const float* c_inv_norm, int64_t t,
                              int64_t D) const = 0;
  virtual void init_stats(float* row_max, float* sum_target, float* best, float* best_class, int64_t M) const = 0;
  virtual void chunk_stats(float* row_max, float* row_sum, float* target, float* best, float* best_class,
                           const float* z, const float* labels, int64_t M, int64_t t, int64_t first_class,
                           bool want_accuracy, const CocoMarginParams& margin) const = 0;
  virtual void rescale_sums(float* row_sum, const float* local_max, const float* row_max, int64_t M) const = 0;
  // mean(log s + m - target); NaN if any label (a shard column) is NaN.
  virtual void loss(float* loss, const float* row_sum, const float* row_max, const float* target,
                    const float* labels, int64_t M) const = 0;
  // cand = 2 rank + (best_class != label) where this rank holds the row's best raw
  // logit (best == raw_max), else +inf; accuracy = the share of even cand (the MIN
  // over ranks of cand: CocoHead::accuracy).
  virtual void accuracy_candidates(float* cand, const float* best, const float* raw_max, const float* best_class,
                                   const float* labels, int rank, int64_t M) const = 0;
  virtual void accuracy(float* accuracy, const float* cand, int64_t M) const = 0;
  // inv_m: the factor of G, 1/M times the loss scale (CocoHeadIo::loss_scale).
  virtual void softmax_grad(float* z, const float* row_max, const float* row_sum, const float* labels, int64_t M,
                            int64_t t, int64_t first_class, float inv_m, const CocoMarginParams& margin) const = 0;
  virtual void centroid_grad(float* dc, const float* h, const float* u, const float* c_inv_norm, int64_t t,
                             int64_t D, float weight, bool exact) const = 0;

  // The fixed shift (docs/DESIGN.md, "The fixed shift"): the steps of the softmax
  // whose shift is a bound known beforehand (alpha for COSINE logits), so one pass
  // per chunk needs no maximum. z (M, t) is the GEMM of the features with the raw
  // centroid rows; v = z * col_scale[j] are the logits (col_scale null: 1).
  virtual void exp_stats(float* z, float* row_sum, float* target, float* raw_target, float* best, float* best_class,
                         const float* col_scale, const float* labels, int64_t M, int64_t t, int64_t first_class,
                         float shift, bool keep, bool want_accuracy, const CocoMarginParams& margin) const = 0;
  virtual void fixed_shift_grad(float* z, const float* row_sum, const float* raw_target, const float* col_scale,
                                const float* labels, int64_t M, int64_t t, int64_t first_class, float shift,
                                float inv_m, bool z_is_exp, const CocoMarginParams& margin) const = 0;
  // dc (+)= weight (h - c inv² (c·h)) per row; with accumulate false dc is written
  // (=), and may be c itself (each element is read before it is written).
  virtual void centroid_grad_scaled(float* dc, const float* h, const float* c, const float* c_inv_norm, int64_t t,
                                    int64_t D, float weight, bool accumulate) const = 0;
  // How many of x (n) are below threshold; scratch is one float on the ops' device.
  // Waits for the device (the host decides on it).
  virtual int64_t count_below(const float* x, int64_t n, float threshold, float* scratch) const = 0;
  // Class sampling: dst (n, D) = the src rows named by rows (n, as floats); and each
  // cls[i] (M) that is a position in rows (n) replaced by first_class + rows[cls[i]].
  virtual void gather_rows(float* dst, const float* src, const float* rows, int64_t n, int64_t D) const = 0;
  virtual void rows_to_classes(float* cls, const float* rows, int64_t first_class, int64_t n, int64_t M) const = 0;
  virtual void project_features(float* g, const float* x, const float* x_inv_norm, int64_t Ml, int64_t D,
                                float alpha) const = 0;
  virtual void scale_by_top_diff(float* dx, const float* g, const float* w, int64_t n) const = 0;
};

const CocoHeadOps& cpu_head_ops();
// Only in a CUDA build (layers/coco_head_cuda_ops.cpp); the bodies run on `stream`.
std::unique_ptr<CocoHeadOps> cuda_head_ops(cuda::Stream stream);

}  // namespace coco
