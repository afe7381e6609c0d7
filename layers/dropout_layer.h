// Dropout (Caffe's, inverted): in TRAIN, y = x * keep / (1 - p); in TEST, y = x.
//
// The mask is counter based, never stored: element i is kept iff
// uniform01(ctx().seed, stream, i) >= p, with stream = mask_stream(layer name,
// ctx().iter). So repeated forwards at one iteration (the gradient checker,
// backward) see the same mask, iterations differ, layers differ, and a CUDA kernel
// can draw the identical mask. In place is allowed.
#pragma once

#include <string>

#include "engine/layer.h"

namespace coco {

class DropoutLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Dropout"; }
  bool allows_in_place() const override { return true; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

  // The mask's stream: mix64(fnv1a64(name) ^ mix64(iter)).
  // batch_in_iter: which of the iteration's iter_size batches (each draws its own mask).
  static uint64_t mask_stream(const std::string& layer_name, int64_t iter, int batch_in_iter = 0);

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;

 private:
  // out = in * keep(i) / (1 - p) at TRAIN, in at TEST; out may be in.
  void apply(const float* in, int64_t n, float* out) const;
  // The same on device pointers (same mask: the counters do not depend on the device).
  // Defined in a CUDA build only.
  void apply_cuda(const float* in, int64_t n, float* out) const;
};

}  // namespace coco
