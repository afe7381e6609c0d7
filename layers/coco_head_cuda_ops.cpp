// The CUDA bodies of the CocoLoss head's steps: each one launches the kernel of
// layers/coco_loss_layer.cu (or cuBLAS) on the ops' stream and returns.
#include "layers/coco_head_ops.h"

#if COCO_WITH_CUDA

#include "engine/cuda_math.h"
#include "layers/coco_loss_cuda.h"

namespace coco {

namespace {

class CudaHeadOps final : public CocoHeadOps {
 public:
  explicit CudaHeadOps(cuda::Stream stream) : st_(stream) {}

  void shard_columns(float* columns, const int32_t* ids, int64_t M, int64_t shard_start, int64_t shard_count,
                     int64_t K) const override {
    coco_head_shard_columns(columns, ids, M, shard_start, shard_count, K, st_);
  }

  void gemm(Precision p, Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
            const float* B, float beta, float* C) const override {
    cuda_gemm_at(p, ta, tb, M, N, K, alpha, A, B, beta, C, st_);
  }
  void copy(int64_t n, const float* x, float* y) const override {
    if (x != y) cuda_copy(n, x, y, st_);
  }
  void set(int64_t n, float value, float* x) const override { cuda_set(n, value, x, st_); }
  void read_to_host(float* host, const float* src, int64_t n) const override {
    coco_head_read_to_host(host, src, n, st_);
  }

  void features(float* f, float* x_inv_norm, const float* x, int64_t Ml, int64_t D, float alpha,
                bool cosine) const override {
    coco_head_features(f, x_inv_norm, x, Ml, D, alpha, cosine, st_);
  }
  void centroid_norms(float* c, float* c_inv_norm, int64_t Kr, int64_t D, bool cosine,
                      bool renormalize) const override {
    coco_head_centroid_norms(c, c_inv_norm, Kr, D, cosine, renormalize, st_);
  }
  void unit_centroids(float* c_hat, const float* c, const float* c_inv_norm, int64_t t,
                      int64_t D) const override {
    coco_head_unit_centroids(c_hat, c, c_inv_norm, t, D, st_);
  }
  void init_stats(float* row_max, float* sum_target, float* best, float* best_class, int64_t M) const override {
    coco_head_init_stats(row_max, sum_target, best, best_class, M, st_);
  }
  void chunk_stats(float* row_max, float* row_sum, float* target, float* best, float* best_class, const float* z,
                   const float* labels, int64_t M, int64_t t, int64_t first_class, bool want_accuracy,
                   const CocoMarginParams& margin) const override {
    coco_head_chunk_stats(row_max, row_sum, target, best, best_class, z, labels, M, t, first_class, want_accuracy,
                          margin, st_);
  }
  void rescale_sums(float* row_sum, const float* local_max, const float* row_max, int64_t M) const override {
    coco_head_rescale_sums(row_sum, local_max, row_max, M, st_);
  }
  void loss(float* loss, const float* row_sum, const float* row_max, const float* target, const float* labels,
            int64_t M) const override {
    coco_head_loss(loss, row_sum, row_max, target, labels, M, st_);
  }
  void accuracy_candidates(float* cand, const float* best, const float* raw_max, const float* best_class,
                           const float* labels, int rank, int64_t M) const override {
    coco_head_accuracy_candidates(cand, best, raw_max, best_class, labels, rank, M, st_);
  }
  void accuracy(float* accuracy, const float* cand, int64_t M) const override {
    coco_head_accuracy(accuracy, cand, M, st_);
  }
  void softmax_grad(float* z, const float* row_max, const float* row_sum, const float* labels, int64_t M, int64_t t,
                    int64_t first_class, float inv_m, const CocoMarginParams& margin) const override {
    coco_head_softmax_grad(z, row_max, row_sum, labels, M, t, first_class, inv_m, margin, st_);
  }
  void centroid_grad(float* dc, const float* h, const float* u, const float* c_inv_norm, int64_t t, int64_t D,
                     float weight, bool exact) const override {
    coco_head_centroid_grad(dc, h, u, c_inv_norm, t, D, weight, exact, st_);
  }
  void exp_stats(float* z, float* row_sum, float* target, float* raw_target, float* best, float* best_class,
                 const float* col_scale, const float* labels, int64_t M, int64_t t, int64_t first_class, float shift,
                 bool keep, bool want_accuracy, const CocoMarginParams& margin) const override {
    coco_head_exp_stats(z, row_sum, target, raw_target, best, best_class, col_scale, labels, M, t, first_class, shift,
                        keep, want_accuracy, margin, st_);
  }
  void fixed_shift_grad(float* z, const float* row_sum, const float* raw_target, const float* col_scale,
                        const float* labels, int64_t M, int64_t t, int64_t first_class, float shift, float inv_m,
                        bool z_is_exp, const CocoMarginParams& margin) const override {
    coco_head_fixed_shift_grad(z, row_sum, raw_target, col_scale, labels, M, t, first_class, shift, inv_m, z_is_exp,
                               margin, st_);
  }
  void centroid_grad_scaled(float* dc, const float* h, const float* c, const float* c_inv_norm, int64_t t, int64_t D,
                            float weight, bool accumulate) const override {
    coco_head_centroid_grad_scaled(dc, h, c, c_inv_norm, t, D, weight, accumulate, st_);
  }
  int64_t count_below(const float* x, int64_t n, float threshold, float* scratch) const override {
    coco_head_count_below(scratch, x, n, threshold, st_);
    float below = 0;
    coco_head_read_to_host(&below, scratch, 1, st_);
    return static_cast<int64_t>(below);
  }
  void gather_rows(float* dst, const float* src, const float* rows, int64_t n, int64_t D) const override {
    coco_head_gather_rows(dst, src, rows, n, D, st_);
  }
  void rows_to_classes(float* cls, const float* rows, int64_t first_class, int64_t n, int64_t M) const override {
    coco_head_rows_to_classes(cls, rows, first_class, n, M, st_);
  }
  void project_features(float* g, const float* x, const float* x_inv_norm, int64_t Ml, int64_t D,
                        float alpha) const override {
    coco_head_project_features(g, x, x_inv_norm, Ml, D, alpha, st_);
  }
  void scale_by_top_diff(float* dx, const float* g, const float* w, int64_t n) const override {
    coco_head_scale_by_top_diff(dx, g, w, n, st_);
  }

 private:
  cuda::Stream st_;
};

}  // namespace

std::unique_ptr<CocoHeadOps> cuda_head_ops(cuda::Stream stream) { return std::make_unique<CudaHeadOps>(stream); }

}  // namespace coco

#endif  // COCO_WITH_CUDA
