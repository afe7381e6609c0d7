// Plain-loop batch statistics for the BatchNorm and BN tests (the definition,
// independent of layers/batch_norm_math).
#pragma once

#include <cmath>
#include <vector>

#include "engine/tensor.h"

namespace coco::testing {

// Per-channel mean and biased variance of x (N, C, S), in double.
inline void channel_stats(const Blob& x, std::vector<double>& mean, std::vector<double>& var) {
  const int64_t N = x.shape(0), C = x.shape(1), S = x.count(2);
  mean.assign(C, 0);
  var.assign(C, 0);
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) mean[c] += x.cdata()[(n * C + c) * S + s];
    mean[c] /= N * S;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) var[c] += std::pow(x.cdata()[(n * C + c) * S + s] - mean[c], 2);
    var[c] /= N * S;
  }
}

}  // namespace coco::testing
