// CocoLoss: the fused COCO head (congenerous cosine loss; docs/DESIGN.md, "The loss").
//
// The same machinery serves the plain softmax loss (logit_type INNER_PRODUCT: z = x.c,
// nothing normalised) and the CosFace / ArcFace margins on the target logit.
//
// Bottoms: features x (M_local, D...) flattened from axis 1, labels (M_local):
// int32 class ids (coco's sources) or float ones (Caffe-style inputs; layers/labels.h).
// K may pass float's 2^24 as long as each rank's shard stays within it
// (kMaxShardClasses): inside the head a label is a column of the shard.
// Tops: loss (1) [, accuracy (1): top-1 of the cosine logits].
// Parameter: centroids c, this rank's shard (K_r, D) of the K classes; rank r owns
// [start_r, start_r + K_r) with K_r = K/N + (r < K % N).
//
// The algorithm is layers/coco_head.h, one orchestration for both devices; this
// layer reads the settings, owns the centroids and hands the head its inputs.
// The centroid gradient is accumulated (+=) into the parameter diff during a train
// forward, scaled by this layer's loss_weight (no K_r x D scratch: the head stays
// lean); backward() writes the feature gradient scaled by the top diff, which must
// equal that loss_weight (checked on both devices).
#pragma once

#include <vector>

#include "engine/layer.h"
#include "layers/coco_head.h"

namespace coco {

// The scale bound of docs/DESIGN.md, "Choosing alpha": alpha = (K-1)/K * ln((K-1) p / (1-p)).
double coco_auto_scale(int64_t num_classes, double target_probability);

class CocoLossLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "CocoLoss"; }
  bool reads_class_ids(int i) const override { return i == 1; }
  int min_bottoms() const override { return 2; }
  int max_bottoms() const override { return 2; }
  int max_tops() const override { return 2; }
  bool can_backward_to(int i) const override { return i == 0; }
  bool is_loss() const override { return true; }
  bool loss_is_global() const override { return true; }
  bool top_is_accuracy(int i) const override { return i == 1; }
  bool param_sharded(int) const override { return true; }
  int64_t shard_row_start(int) const override { return shard_.start; }
  int64_t shard_total_rows(int) const override { return K_; }
  RowGradient row_gradient(int param_index) const override;
  void reshape(const Blobs& bottom, const Blobs& top) override;

  float scale() const { return alpha_; }
  ShardRange shard() const { return shard_; }
  // Chunks whose logits the last forward kept (for tests of the cache).
  int64_t cached_chunks() const { return head_.plan().cached_chunks; }
  // The last forward's shift (fixed or running maximum) and the fixed shift's
  // fallbacks so far (for tests and coco-bench head).
  bool used_fixed_shift() const { return head_.used_fixed_shift(); }
  int64_t fixed_shift_fallbacks() const { return head_.fixed_shift_fallbacks(); }
  // Class sampling: the shard's local rows the last train forward kept (host).
  const std::vector<int64_t>& sampled_rows() const { return head_.sampled_rows_host(); }

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;

 private:
  // The two devices differ only in the ops they hand the head.
  void forward_with(const CocoHeadOps& ops, const Blobs& bottom, const Blobs& top);
  void backward_with(const CocoHeadOps& ops, const Blobs& top, const std::vector<bool>& propagate_down,
                     const Blobs& bottom);
  void set_scale(const proto::CocoLossParameter& p);
  void init_centroids(const proto::CocoLossParameter& p, uint64_t base_seed);

  int64_t K_ = 0, D_ = 0;
  float alpha_ = 1;
  float loss_weight_ = 1;
  ShardRange shard_;
  CocoHead head_;
  CocoHeadGradient grad_;  // the last train forward's handoff to backward
  Tensor label_ids_;       // float labels converted to int32 ids (layers/labels.h)
};

}  // namespace coco
