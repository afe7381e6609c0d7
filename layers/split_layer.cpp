#include "layers/split_layer.h"

#include <cstring>

#include "engine/common.h"
#include "engine/math.h"

#if COCO_WITH_CUDA
#include "engine/cuda_math.h"
#include "layers/split_cuda.h"
#endif

namespace coco {

void SplitLayer::reshape(const Blobs& bottom, const Blobs& top) {
  for (auto* t : top) {
    if (t == bottom[0]) COCO_THROW(where(), "a split cannot be in place");
    t->reshape_like(*bottom[0]);
    t->set_element_type(bottom[0]->element_type());  // a split label input stays int32 ids
  }
}

void SplitLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  for (auto* t : top) {
    t->set_element_type(bottom[0]->element_type());  // the input's type may be set after the net is built
    t->data().copy_from(bottom[0]->data());
  }
}

// bottom diff = sum of the tops' diffs.
void SplitLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  if (!propagate_down[0]) return;
  const int64_t n = bottom[0]->count();
  float* dx = bottom[0]->mutable_diff();
  std::memcpy(dx, top[0]->cdiff(), n * sizeof(float));
  for (size_t t = 1; t < top.size(); ++t) cpu_axpy(n, 1.f, top[t]->cdiff(), dx);
}

#if COCO_WITH_CUDA
// Device-to-device copies on the compute stream (Tensor::copy_from would be a
// synchronous copy outside that stream).
void SplitLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  for (auto* t : top) {
    t->set_element_type(bottom[0]->element_type());
    cuda_copy(bottom[0]->count(), bottom[0]->cdata(), t->mutable_data(), cuda::stream());
  }
}

void SplitLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  if (!propagate_down[0]) return;
  std::vector<const float*> dys;  // (tops) device diff pointers
  for (auto* t : top) dys.push_back(t->cdiff());
  split_backward_cuda(bottom[0]->mutable_diff(), dys.data(), static_cast<int64_t>(dys.size()), bottom[0]->count(),
                      cuda::stream());
}
#else
COCO_CUDA_STUBS(SplitLayer)
#endif

void InputLayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) {
  const auto& shapes = param_.input_param().shape();
  if (shapes.size() != 1 && static_cast<size_t>(shapes.size()) != top.size())
    COCO_THROW(where(), "input_param gives ", shapes.size(), " shapes for ", top.size(), " tops");
  for (size_t t = 0; t < top.size(); ++t) {
    const auto& s = shapes.size() == 1 ? shapes[0] : shapes[static_cast<int>(t)];
    Shape shape(s.dim().begin(), s.dim().end());
    for (auto d : shape)
      if (d <= 0) COCO_THROW(where(), "input shape ", shape_str(shape), " of top ", t, ": every dimension must be positive");
    top[t]->reshape(shape);
  }
}

}  // namespace coco
