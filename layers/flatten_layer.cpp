#include "layers/flatten_layer.h"

#include <algorithm>

#include "engine/common.h"

#if COCO_WITH_CUDA
#include "engine/cuda_math.h"
#endif

namespace coco {

void FlattenLayer::reshape(const Blobs& bottom, const Blobs& top) {
  if (top[0] == bottom[0]) COCO_THROW(where(), "cannot run in place");
  const auto& p = param_.flatten_param();
  const Shape& s = bottom[0]->shape();
  const int n = static_cast<int>(s.size());
  auto canonical = [&](int a, const char* what) {
    if (a < -n || a >= n) COCO_THROW(where(), what, " ", a, " out of range for bottom ", shape_str(s));
    return a < 0 ? a + n : a;
  };
  const int begin = canonical(p.axis(), "axis"), end = canonical(p.end_axis(), "end_axis");
  if (end < begin) COCO_THROW(where(), "end_axis ", p.end_axis(), " comes before axis ", p.axis(), " in bottom ", shape_str(s));
  Shape out(s.begin(), s.begin() + begin);
  out.push_back(shape_count(s, begin, end + 1));
  out.insert(out.end(), s.begin() + end + 1, s.end());
  top[0]->reshape(out);
}

void FlattenLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  std::copy(bottom[0]->cdata(), bottom[0]->cdata() + bottom[0]->count(), top[0]->mutable_data());
}

void FlattenLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  if (!propagate_down[0]) return;
  std::copy(top[0]->cdiff(), top[0]->cdiff() + top[0]->count(), bottom[0]->mutable_diff());
}

#if COCO_WITH_CUDA
// Device-to-device copies on the compute stream; no kernel of its own.
void FlattenLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  cuda_copy(bottom[0]->count(), bottom[0]->cdata(), top[0]->mutable_data(), cuda::stream());
}

void FlattenLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  if (!propagate_down[0]) return;
  cuda_copy(top[0]->count(), top[0]->cdiff(), bottom[0]->mutable_diff(), cuda::stream());
}
#else
COCO_CUDA_STUBS(FlattenLayer)
#endif

}  // namespace coco
