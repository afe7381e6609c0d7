// BatchNorm (Caffe's): y = (x - mean) / sqrt(var + eps) per channel (axis 1), no
// learned scale or shift (a Scale layer follows in Caffe's nets).
//
// Three parameter blobs, all state (param_learnable() == false), stored Caffe's way
// so Caffe models load: [mean sum (C), variance sum (C), scale factor (1)]. The
// stored statistics are sums weighted by moving_average_fraction; the statistics
// they stand for are the sums divided by the factor (0 when the factor is 0).
// Training (use_global_stats false, the default outside TEST) normalises with the
// batch's statistics over N and the spatial axes and updates the sums:
//   factor = maf * factor + 1;  mean = maf * mean + batch_mean;
//   var = maf * var + m/(m-1) * batch_var   (m = N * spatial, unbiased variance)
// The normalised values are kept for backward (a later in-place layer may
// overwrite the top), so in-place use is safe.
//
// CUDA: the same steps with the kernels of layers/batch_norm_cuda.h (per-channel
// sums in double, in a fixed order); the running sums are updated on the device.
#pragma once

#include "engine/layer.h"
#include "layers/batch_norm_math.h"

namespace coco {

class BatchNormLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "BatchNorm"; }
  bool allows_in_place() const override { return true; }
  bool param_learnable(int) const override { return false; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;

 private:
  BnStats stats_mode() const;
  // m/(m-1) for m = N * S values per channel (1 when m <= 1): the unbiased variance.
  static float variance_correction(const BnDims& d);

  int64_t channels_ = 0;
  BatchNormCore core_;  // statistics, x_hat and gradient sums of the last batch
};

}  // namespace coco
