#include "layers/relu_layer.h"

#if COCO_WITH_CUDA
#include "layers/relu_cuda.h"
#endif

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

#if COCO_WITH_CUDA
// The CPU path's expressions, elementwise on the device (layers/relu_layer.cu).
void ReLULayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  relu_forward_cuda(top[0]->mutable_data(), bottom[0]->cdata(), bottom[0]->count(),
                    param_.relu_param().negative_slope(), cuda::stream());
}

void ReLULayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  if (!propagate_down[0]) return;
  relu_backward_cuda(bottom[0]->mutable_diff(), top[0]->cdata(), top[0]->cdiff(), bottom[0]->count(),
                     param_.relu_param().negative_slope(), cuda::stream());
}
#else
COCO_CUDA_STUBS(ReLULayer)
#endif

}  // namespace coco
