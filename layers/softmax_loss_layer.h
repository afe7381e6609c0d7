// SoftmaxWithLoss (Caffe's): softmax over softmax_param.axis, then the mean negative
// log-likelihood of the labels.
//
// Bottoms: scores (outer, C, inner...) and labels (outer * inner values, class ids
// stored as floats). Tops: the loss, shape {1}; optionally the probabilities (same
// shape as the scores; like Caffe, its diff is ignored by backward).
// loss_param: ignore_label (samples with that label add nothing and get zero
// gradient) and normalization (FULL: outer*inner, VALID: non-ignored count, the
// default, BATCH_SIZE: outer, NONE: 1; the legacy `normalize` bool picks VALID or
// BATCH_SIZE when normalization is not set). The loss per position is computed as
// log-sum-exp minus the target score with the row maximum subtracted first, so large
// scores neither overflow nor lose the target's precision.
//   bottom diff (=) = (softmax - onehot) * top_diff[0] / normalizer
#pragma once

#include "engine/layer.h"

namespace coco {

enum class LossNormalization { kFull, kValid, kBatchSize, kNone };

class SoftmaxWithLossLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "SoftmaxWithLoss"; }
  bool reads_class_ids(int i) const override { return i == 1; }
  int min_bottoms() const override { return 2; }
  int max_bottoms() const override { return 2; }
  int max_tops() const override { return 2; }
  bool is_loss() const override { return true; }
  bool can_backward_to(int bottom_index) const override { return bottom_index == 0; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;

 private:
  double normalizer(int64_t valid_count) const;
  bool ignored(float label) const { return has_ignore_label_ && label == static_cast<float>(ignore_label_); }

  int axis_ = 1;
  int64_t outer_ = 0, classes_ = 0, inner_ = 0;
  bool has_ignore_label_ = false;
  int ignore_label_ = -1;
  LossNormalization normalization_ = LossNormalization::kValid;
  Tensor prob_;                  // (outer, C, inner): softmax of the scores
  std::vector<double> losses_;   // (outer * inner): per-position loss, 0 where ignored
  int64_t valid_count_ = 0;      // positions not ignored, from the last forward
  // The CUDA path's state between forward and backward, in float storage:
  // [normalizer, per-position loss...] as 1 + outer*inner doubles, and the
  // per-position status (int32) -- valid_count_ and losses_ on the device.
  Tensor losses_dev_, status_dev_;
  Tensor label_floats_;  // int32 labels as floats (layers/labels.h)
};

}  // namespace coco
