// PReLU (Caffe's): y = x > 0 ? x : a_c * x with a learned slope a per channel
// (axis 1), or one slope for all channels (channel_shared). Slopes start at the
// filler's value (default constant 0.25).
//
// In place is allowed (the seed's nets use it): the slope gradient needs x, which
// the top overwrites, so the layer keeps a copy of the bottom data in that case.
#pragma once

#include <vector>

#include "engine/layer.h"

namespace coco {

class PReLULayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "PReLU"; }
  bool allows_in_place() const override { return true; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;

 private:
  int64_t channels_ = 0;
  Tensor bottom_copy_;  // (N, C, ...) bottom data, kept only when in place
  std::vector<float> plane_sums_;  // (N*C) slope-gradient partial sums
  Tensor plane_sums_dev_;          // (N*C) the same on the device (CUDA path)
};

}  // namespace coco
