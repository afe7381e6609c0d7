// CenterProjection (the seed's COCO classifier): cosine logits against unit centroids.
//
// Weight (K, D), optional bias (K). Forward first REWRITES every weight row as a unit
// vector in place, w_k <- w_k / sqrt(||w_k||^2 + eps), then top (N, K) = scale * x wᵀ
// (+ bias). Backward treats the (now unit) weights as plain weights: no Jacobian of
// the normalisation. That is the seed's behaviour, kept on purpose so its runs can be
// reproduced; the exact alternative is the CocoLoss head (centroid_update: EXACT).
// (The seed skipped the renormalisation when N == 1; coco always does it.)
//   bottom diff (=)  = scale * dY w            (N, D)
//   weight diff (+=) = scale * dYᵀ x           (K, D)
//   bias diff   (+=) = column sums of dY       (K)   (the bias is not scaled)
#pragma once

#include "engine/layer.h"

namespace coco {

class CenterProjectionLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "CenterProjection"; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;

 private:
  int64_t num_output_ = 0;  // K
  int64_t dim_ = 0;         // D = bottom count from axis 1
  bool bias_term_ = false;
  float scale_ = 1;
};

}  // namespace coco
