// Concat (Caffe's): joins 1+ bottoms along `axis` (or the legacy concat_dim);
// every other axis must match. Each bottom is a (outer, A_b * inner) slab of the
// top's (outer, A * inner) rows; backward copies the slabs back.
#pragma once

#include "engine/layer.h"

namespace coco {

class ConcatLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Concat"; }
  int max_bottoms() const override { return -1; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;

 private:
  int axis_ = 1;
};

}  // namespace coco
