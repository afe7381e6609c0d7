// BN: the seed's fused batch normalisation (CaffeMex), y = scale * x_hat + shift per
// channel (axis 1), x_hat = (x - mean) / sqrt(var + eps).
//
// Four parameter blobs, as in the seed's models: [scale (C), shift (C), running
// mean (C), running variance (C)]; the last two are state (param_learnable() is
// false; the seed's nets also give them lr_mult 0). Which statistics normalise:
// use_global_stats if set, else the running ones in TEST phase when
// moving_average is on, else the batch's (biased variance, over N and the spatial
// axes). In TRAIN with moving_average, each forward that uses batch statistics
// updates running = decay * running + (1 - decay) * batch. The running variance
// starts at 1, the mean at 0. The normalisation math is shared with BatchNorm
// (layers/batch_norm_math.h). x_hat is kept for backward, so in place is safe.
// CUDA: the same steps with the kernels of layers/batch_norm_cuda.h.
// Against CaffeMex's BN: training with moving_average on (the seed's nets) is the
// same step for step. CaffeMex also updates the running statistics in TRAIN with
// moving_average off (nothing reads them then), and in TEST divides by
// sqrt(running variance) without eps, where this layer adds eps (a relative
// difference of about eps / (2 var)).
#pragma once

#include "engine/layer.h"
#include "layers/batch_norm_math.h"

namespace coco {

class BNLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "BN"; }
  bool allows_in_place() const override { return true; }
  bool param_learnable(int param_index) const override { return param_index < 2; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;

 private:
  BnStats stats_mode() const;

  int64_t channels_ = 0;
  BatchNormCore core_;  // statistics, x_hat and gradient sums of the last batch
};

}  // namespace coco
