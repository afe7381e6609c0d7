#include "layers/concat_layer.h"

#include <algorithm>

#include "engine/common.h"

#if COCO_WITH_CUDA
#include "layers/concat_cuda.h"
#endif

namespace coco {

void ConcatLayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng&) {
  const auto& p = param_.concat_param();
  if (p.has_axis() && p.has_concat_dim()) COCO_THROW(where(), "give axis or concat_dim, not both");
  const int n = bottom[0]->num_axes();
  const int a = p.has_concat_dim() ? static_cast<int>(p.concat_dim()) : p.axis();
  if (a < -n || a >= n) COCO_THROW(where(), "axis ", a, " out of range for bottom ", shape_str(bottom[0]->shape()));
  axis_ = a < 0 ? a + n : a;
}

void ConcatLayer::reshape(const Blobs& bottom, const Blobs& top) {
  Shape out = bottom[0]->shape();
  for (size_t b = 1; b < bottom.size(); ++b) {
    const Shape& s = bottom[b]->shape();
    bool ok = s.size() == out.size();
    for (size_t i = 0; ok && i < s.size(); ++i) ok = static_cast<int>(i) == axis_ || s[i] == out[i];
    if (!ok)
      COCO_THROW(where(), "bottom ", b, " has shape ", shape_str(s), ", bottom 0 has ", shape_str(bottom[0]->shape()),
                 ": all axes but ", axis_, " must match");
    out[axis_] += s[axis_];
  }
  for (auto* b : bottom)
    if (b == top[0]) COCO_THROW(where(), "cannot run in place");
  top[0]->reshape(out);
}

void ConcatLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  const int64_t outer = top[0]->count(0, axis_), row = top[0]->count(axis_);
  float* y = top[0]->mutable_data();
  int64_t offset = 0;  // of this bottom's slab inside a top row
  for (auto* b : bottom) {
    const int64_t len = b->count(axis_);
    const float* x = b->cdata();
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < outer; ++o) std::copy(x + o * len, x + (o + 1) * len, y + o * row + offset);
    offset += len;
  }
}

void ConcatLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  const int64_t outer = top[0]->count(0, axis_), row = top[0]->count(axis_);
  const float* dy = top[0]->cdiff();
  int64_t offset = 0;
  for (size_t i = 0; i < bottom.size(); ++i) {
    const int64_t len = bottom[i]->count(axis_);
    if (propagate_down[i]) {
      float* dx = bottom[i]->mutable_diff();
#pragma omp parallel for schedule(static)
      for (int64_t o = 0; o < outer; ++o) std::copy(dy + o * row + offset, dy + o * row + offset + len, dx + o * len);
    }
    offset += len;
  }
}

#if COCO_WITH_CUDA
// The same slabs as the CPU path, as strided device copies on the compute stream.
void ConcatLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  const int64_t outer = top[0]->count(0, axis_), row = top[0]->count(axis_);
  float* y = top[0]->mutable_data();
  int64_t offset = 0;
  for (auto* b : bottom) {
    const int64_t len = b->count(axis_);
    concat_copy_cuda(y + offset, b->cdata(), outer, len, row, len, cuda::stream());
    offset += len;
  }
}

void ConcatLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  const int64_t outer = top[0]->count(0, axis_), row = top[0]->count(axis_);
  const float* dy = top[0]->cdiff();
  int64_t offset = 0;
  for (size_t i = 0; i < bottom.size(); ++i) {
    const int64_t len = bottom[i]->count(axis_);
    if (propagate_down[i]) concat_copy_cuda(bottom[i]->mutable_diff(), dy + offset, outer, len, len, row, cuda::stream());
    offset += len;
  }
}
#else
COCO_CUDA_STUBS(ConcatLayer)
#endif

}  // namespace coco
