#include "layers/relu_layer.h"

namespace coco {

void ReLULayer::reshape(const Blobs& bottom, const Blobs& top) {
  if (top[0] != bottom[0]) top[0]->reshape_like(*bottom[0]);
}

// top (N, ...) = relu(bottom); in place is fine: each element reads only itself.
void ReLULayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  const float* x = bottom[0]->cdata();
  float* y = top[0]->mutable_data();
  const float slope = param_.relu_param().negative_slope();
  const int64_t n = bottom[0]->count();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0 ? x[i] : slope * x[i];
}

// bottom diff (=) from top diff. In place, x has been overwritten by y, whose sign
// is the same as x's for slope >= 0, so the mask test on the stored value holds.
void ReLULayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  if (!propagate_down[0]) return;
  const float* y = top[0]->cdata();
  const float* dy = top[0]->cdiff();
  float* dx = bottom[0]->mutable_diff();
  const float slope = param_.relu_param().negative_slope();
  const int64_t n = bottom[0]->count();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > 0 ? dy[i] : slope * dy[i];
}

}  // namespace coco
