// Normalize (the seed's l2norm): top = coeff * x / sqrt(||x||^2 + eps) per sample,
// the norm taken over everything after axis 0 (C*H*W). eps = 1e-12 inside the square
// root (docs/DESIGN.md, "Conventions"), not the seed's 1e-6 added to the norm.
//
// Backward is the exact Jacobian of the normalisation:
//   dx = coeff / n * (g - x̂ (x̂ . g)),   n = sqrt(||x||^2 + eps), x̂ = x / n.
// (The seed's CUDA backward used y = coeff * x̂ in place of x̂, which is only right
// for coeff = 1.) The per-sample n is kept from forward and x̂ is recovered as
// top / coeff, so the layer works in place and coeff must not be 0.
#pragma once

#include "engine/layer.h"

namespace coco {

class NormalizeLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Normalize"; }
  bool allows_in_place() const override { return true; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;

 private:
  float coeff_ = 1;
  std::vector<double> norms_;  // (N): sqrt(||x_i||^2 + eps), from the last forward
  // The CUDA path's norms_: N doubles in 2N floats of device memory (double, as
  // on the CPU, so backward scales by the same coeff / n).
  Tensor norms_dev_;
};

}  // namespace coco
