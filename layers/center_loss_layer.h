// CenterLoss (the seed's baseline, Wen et al. 2016): pull each feature towards its
// class centre.
//
// Bottoms: features x (N, D...), flattened from center_loss_param.axis into (N, D),
// and labels (N). Top: the loss, shape {1}. Parameter: centres c (K, D), filled with
// center_filler.
//   loss             = 1/(2N) sum_i ||x_i - c_{y_i}||^2
//   bottom diff (=)  = (x_i - c_{y_i}) / N * top_diff          (top_diff: loss weight)
//   centre diff (+=), center_update:
//     SEED (default)  sum_{i: y_i = j} (c_j - x_i) / (1 + n_j)   n_j = count of class j
//     GRADIENT        top_diff * sum_{i: y_i = j} (c_j - x_i) / N  (the true gradient)
// SEED is what the original layer does. Read from the Caffe sources (the seed
// author's liuyuisanai/CaffeMex_v2 and Wen's ydwen/caffe, both
// src/caffe/layers/center_loss_layer.cpp): Backward_cpu sums
// variation_sum_j -= (x_i - c_j) over the batch's samples of class j and sets
// center_diff_j = variation_sum_j / (count_j + 1). It never reads top diff, so the
// loss weight does not scale the centre step (the paper's centre rate alpha is the
// solver's lr * lr_mult), and classes absent from the batch get 0. CaffeMex adds
// into the diff (axpy), ydwen overwrites it (axpby, beta 0); coco accumulates, as
// every parameter diff here (the same thing once the Net has zeroed the diffs).
// The originals do not check labels; coco rejects a label outside [0, K).
#pragma once

#include "engine/layer.h"

namespace coco {

enum class CenterUpdate { kSeed, kGradient };

class CenterLossLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "CenterLoss"; }
  bool reads_class_ids(int i) const override { return i == 1; }
  int min_bottoms() const override { return 2; }
  int max_bottoms() const override { return 2; }
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
  int64_t num_classes_ = 0;  // K
  int axis_ = 1;
  int64_t num_ = 0;  // N = bottom count before axis
  int64_t dim_ = 0;  // D = bottom count from axis
  CenterUpdate update_ = CenterUpdate::kSeed;
  Tensor distance_;  // (N, D): x_i - c_{y_i}, from the last forward
  // CUDA scratch in float storage: per-sample squared distances (N doubles) and the
  // class chains of backward (2N int32).
  Tensor rows_dev_, chain_dev_;
  Tensor label_floats_;  // int32 labels as floats (layers/labels.h)
};

}  // namespace coco
