// CocoLoss: the fused COCO head of DESIGN.md (congenerous cosine loss).
//
// The same machinery serves the plain softmax loss (logit_type INNER_PRODUCT: z = x.c,
// nothing normalised) and the CosFace / ArcFace margins on the target logit.
//
// Bottoms: features x (M_local, D...) flattened from axis 1, labels (M_local).
// Tops: loss (1) [, accuracy (1): top-1 of the cosine logits].
// Parameter: centroids c, this rank's shard (K_r, D) of the K classes; rank r owns
// [start_r, start_r + K_r) with K_r = K/N + (r < K % N).
//
// Why it is built this way: the head must scale to millions of classes, so no rank
// ever holds a K-wide or an M x K_r tensor. Classes are visited in chunks of T with
// an online softmax (running row max and rescaled row sum); the ranks join through
// all-reduce MAX, then one SUM over [sums, target logits]. The backward pass runs in
// the same call as the forward (train phase): per chunk the logits come back from a
// cache (as many chunks as logits_cache_mb holds) or are recomputed, and
// G = (softmax - onehot)/M gives the centroid gradient Gᵀf and the feature gradient
// G ĉ, which is reduce-scattered to the ranks owning the samples.
//
// The centroid gradient is accumulated (+=) into the parameter diff during forward,
// scaled by this layer's loss_weight (no K_r x D scratch: the head stays lean);
// backward() writes the feature gradient scaled by the top diff, which must equal
// that loss_weight (the Net guarantees it).
#pragma once

#include <vector>

#include "engine/layer.h"

namespace coco {

// DESIGN.md's bound: alpha = (K-1)/K * ln((K-1) p / (1-p)).
double coco_auto_scale(int64_t num_classes, double target_probability);

class CocoLossLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "CocoLoss"; }
  int min_bottoms() const override { return 2; }
  int max_bottoms() const override { return 2; }
  int max_tops() const override { return 2; }
  bool can_backward_to(int i) const override { return i == 0; }
  bool is_loss() const override { return true; }
  bool loss_is_global() const override { return true; }
  bool param_sharded(int) const override { return true; }
  int64_t shard_row_start(int) const override { return shard_.start; }
  int64_t shard_total_rows(int) const override { return K_; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

  float scale() const { return alpha_; }
  ShardRange shard() const { return shard_; }
  // Chunks whose logits the last forward kept (for tests of the cache).
  int64_t cached_chunks() const { return cached_chunks_; }

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
#if COCO_WITH_CUDA
  // The same steps on the device (layers/coco_loss_layer.cu + cuBLAS): every
  // buffer below the "CUDA scratch" line, nothing copied to the host except, on
  // more than one rank, the per-rank batch sizes (N floats: GEMM shapes).
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
#endif

 private:
  int64_t K_ = 0, D_ = 0, T_ = 0;
  float alpha_ = 1;
  bool cosine_ = true;  // logit_type COSINE (else INNER_PRODUCT)
  proto::CocoLossParameter::MarginType margin_type_ = proto::CocoLossParameter::NONE;
  float margin_ = 0;
  // Target logit with its margin, and d(margined)/d(raw) for the backward.
  float apply_margin(float z) const;
  float margin_slope(float z) const;
  // Unit centroids of local rows [c0, c0 + t) into c_hat_ (T, D).
  void unit_centroids(int64_t c0, int64_t t);
  float loss_weight_ = 1;
  ShardRange shard_;
  proto::CocoLossParameter::CentroidUpdate update_ = proto::CocoLossParameter::EXACT;
  int64_t cached_chunks_ = 0;
  bool grad_ready_ = false;

  // Scratch (grown, never shrunk). M = global batch, M_l = local batch.
  std::vector<int64_t> counts_;      // per-rank batch sizes
  std::vector<float> x_inv_norm_;    // (M_l) 1/||x_i||
  std::vector<float> f_all_;         // (M, D) alpha * x̂, all ranks
  std::vector<float> labels_all_;    // (M)
  std::vector<float> c_hat_;         // (T, D) unit centroids of the current chunk
  std::vector<float> c_inv_norm_;    // (K_r)
  std::vector<float> logits_;        // (cached chunks + 1) * (M, T): cache, then scratch
  std::vector<float> row_max_;       // (M)
  std::vector<float> sum_target_;    // (2M): [row sums, target logits]
  std::vector<float> best_;          // (M) best local raw logit (accuracy)
  std::vector<float> best_class_;    // (M)
  std::vector<float> grad_f_all_;    // (M, D) partial dL/df over this rank's classes
  std::vector<float> grad_x_;        // (M_l, D) dL/dx for this rank's rows (unit weight)
  std::vector<float> grad_c_hat_;    // (T, D)
  std::vector<float> feat_send_;     // (M_l, D) staging for the gather

  // CUDA scratch: device tensors that follow the bottoms' device (set in reshape),
  // grown in forward, never shrunk. None is K-wide or M x K_r beyond the cache.
  Tensor d_counts_;        // (N) per-rank batch sizes (more than one rank only)
  Tensor d_x_inv_norm_;    // (M_l)
  Tensor d_f_all_;         // (M, D) alpha * x̂ of all ranks (gathered in place)
  Tensor d_labels_all_;    // (M)
  Tensor d_c_inv_norm_;    // (K_r)
  Tensor d_c_hat_;         // (T', D) unit centroids of the current chunk (EXACT cosine only); T' = min(T, K_r)
  Tensor d_logits_;        // (cached chunks + 1) slots of M x T', each padded to 64 floats
  Tensor d_row_max_;       // (M)
  Tensor d_local_max_;     // (M) this rank's row maxima before the MAX all-reduce
  Tensor d_sum_target_;    // (2M) [row sums, target logits]
  Tensor d_best_;          // (M)
  Tensor d_best_class_;    // (M)
  Tensor d_raw_max_;       // (M)
  Tensor d_cand_;          // (M)
  Tensor d_grad_f_all_;    // (M, D); at one rank also dL/dx after the projection
  Tensor d_grad_x_;        // (M_l, D) dL/dx of this rank's rows (more than one rank only)
  Tensor d_grad_c_hat_;    // (T', D)
  const float* d_grad_x_ptr_ = nullptr;  // d_grad_f_all_ or d_grad_x_ after a train forward
};

}  // namespace coco
