// ReLU (Caffe's, with negative_slope): y = x > 0 ? x : slope * x. In place allowed.
#pragma once

#include "engine/layer.h"

namespace coco {

class ReLULayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "ReLU"; }
  bool allows_in_place() const override { return true; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
};

}  // namespace coco
