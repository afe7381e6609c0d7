// Scale (Caffe's): y = x * s (+ b), with s broadcast over bottom axes
// [axis, axis + num_axes) (num_axes -1: to the last axis; 0: one scalar).
//
// The scale is a learned parameter (blobs_[0], filler default constant 1), or,
// with a second bottom, that bottom (its shape must equal bottom 0's axes from
// `axis` on, for as many axes as it has). bias_term adds a learned bias b of the
// scale's shape (the last parameter blob, filler default constant 0).
// x is viewed as (outer, D, inner) with D the scale's count. In place is allowed
// (Caffe's ResNets use it): the scale gradient needs x, so the layer keeps a copy
// of the bottom data then.
#pragma once

#include "engine/layer.h"

namespace coco {

class ScaleLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Scale"; }
  int max_bottoms() const override { return 2; }
  bool allows_in_place() const override { return true; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;

 private:
  // The scale's shape: the learned blob's or bottom 1's.
  Shape scale_shape(const Blobs& bottom) const;

  int axis_ = 1;
  Shape param_shape_;         // shape of the learned scale/bias
  int64_t outer_ = 0, dim_ = 0, inner_ = 0;
  Tensor bottom_copy_;        // (outer, D, inner) bottom data, kept only when in place
};

}  // namespace coco
