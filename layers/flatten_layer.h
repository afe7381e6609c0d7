// Flatten (Caffe's): merges bottom axes [axis, end_axis] into one; top (..., merged,
// ...). Data and gradient are copied (a shared view would need storage aliasing
// across shapes, which Tensor does not offer).
#pragma once

#include "engine/layer.h"

namespace coco {

class FlattenLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Flatten"; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
};

}  // namespace coco
