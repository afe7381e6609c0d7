// Split: copies one blob to several tops and sums their gradients. The Net inserts
// it wherever one blob feeds several layers (as Caffe does), so every layer's
// backward can write (=) its bottom diff.
#pragma once

#include "engine/layer.h"

namespace coco {

class SplitLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Split"; }
  bool reads_class_ids(int i) const override { return i == 0; }
  int max_tops() const override { return -1; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
};

// Input: the net's entry points (data, labels). Its tops are filled from outside;
// shapes come from input_param (or the legacy `input`/`input_dim` fields).
class InputLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Input"; }
  bool is_input() const override { return true; }
  int min_bottoms() const override { return 0; }
  int max_bottoms() const override { return 0; }
  int max_tops() const override { return -1; }
  void reshape(const Blobs& bottom, const Blobs& top) override {}

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override {}
  void backward_cpu(const Blobs&, const std::vector<bool>&, const Blobs&) override {}
  void forward_cuda(const Blobs& bottom, const Blobs& top) override {}
  void backward_cuda(const Blobs&, const std::vector<bool>&, const Blobs&) override {}
};

}  // namespace coco
