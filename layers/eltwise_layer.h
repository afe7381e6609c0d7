// Eltwise (Caffe's): elementwise SUM (with optional coeff, one per bottom), PROD
// or MAX over 2+ bottoms of one shape.
//
// PROD's gradient is the product of the other bottoms (stable_prod_grad, the
// default) or top / x_i (Caffe's fast variant; wrong where x_i == 0). MAX keeps
// the index of the winning bottom per element (the first one on ties) and routes
// the gradient there only.
#pragma once

#include <vector>

#include "engine/layer.h"

namespace coco {

class EltwiseLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Eltwise"; }
  int min_bottoms() const override { return 2; }
  int max_bottoms() const override { return -1; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;

 private:
  std::vector<float> coeff_;  // (bottoms) SUM weights, 1 unless given
  std::vector<int> argmax_;   // (count) MAX: which bottom won each element
  Tensor argmax_dev_;         // (count) the same on the device, as floats (CUDA path)
};

}  // namespace coco
