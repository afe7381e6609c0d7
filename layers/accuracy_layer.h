// Accuracy (Caffe's): the fraction of samples whose true label is among the
// top_k scores. Bottoms: scores (outer, C, inner) with C on `axis`, labels
// (outer * inner values). Tops: accuracy (a scalar), optionally per-class accuracy (C).
//
// Ties follow Caffe: a sample counts as correct iff fewer than top_k scores are
// strictly greater than the true class's score. Labels equal to ignore_label (if
// set) are skipped; with nothing counted, the accuracy is 0. No gradient flows.
#pragma once

#include "engine/layer.h"

namespace coco {

class AccuracyLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Accuracy"; }
  bool reads_class_ids(int i) const override { return i == 1; }
  int min_bottoms() const override { return 2; }
  int max_bottoms() const override { return 2; }
  int max_tops() const override { return 2; }
  bool can_backward_to(int) const override { return false; }
  bool top_is_accuracy(int) const override { return true; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;

 private:
  int axis_ = 1;
  int64_t outer_ = 0, classes_ = 0, inner_ = 0;
  // The CUDA path's integer counters (uint32 in float storage): counted, correct,
  // bad labels, per class seen and hit (accuracy_counter_count(C) of them).
  Tensor counters_;
  Tensor label_floats_;  // int32 labels as floats (layers/labels.h)
};

}  // namespace coco
