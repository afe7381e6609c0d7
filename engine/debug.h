// Debug-mode checks that need a whole net: the finite-difference check of the loss
// layers' gradients (coco-train --debug-gradcheck) on the real first batch.
//
// Why on the real batch: a head can be right on the unit test's random inputs and
// wrong on the features a real backbone produces (saturated softmax, a margin past
// pi, a label outside the shard). The check perturbs sampled entries of the loss
// layer's bottoms and parameters, one at a time, by +-h and compares the central
// difference of J = loss_weight * sum(top 0) with the layer's analytic gradient (one backward
// with top-0 diff = loss_weight). Everything the layer touched (its parameters, which forward
// may update -- the seed's renormalised centroids, running centres) is restored.
#pragma once

#include <string>
#include <vector>

#include "engine/net.h"

namespace coco {

struct GradCheckResult {
  std::string layer;        // "name (Type)"
  int64_t checked = 0;      // entries compared
  int64_t failed = 0;
  double max_error = 0;     // largest |analytic - numeric| / (tolerance of that entry)
  std::string worst;        // where max_error occurred, with both values
  bool ok() const { return failed == 0; }
};

struct GradCheckOptions {
  int samples = 12;         // entries per bottom and per parameter blob
  double step = 1e-3;       // h, scaled by max(1, |x|): small, as softmax at scale alpha curves fast
  double rtol = 5e-2;       // relative tolerance
  uint64_t seed = 1;
};

// One loss layer with its bottoms and tops as the net wired them (a forward has run).
GradCheckResult check_loss_layer_gradient(Layer& layer, const Blobs& bottom, const Blobs& top,
                                          const std::vector<bool>& check_bottom, const GradCheckOptions& o = {});
// Every loss layer of a net whose inputs are filled (runs the net forward first).
std::vector<GradCheckResult> check_loss_gradients(Net& net, const GradCheckOptions& o = {});

}  // namespace coco
