#include "layers/accuracy_layer.h"

#include <vector>

#include "engine/common.h"
#include "layers/labels.h"
#if COCO_WITH_CUDA
#include "layers/accuracy_cuda.h"
#endif

namespace coco {

void AccuracyLayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng&) {
  const auto& p = param_.accuracy_param();
  const int n = bottom[0]->num_axes();
  if (p.axis() < -n || p.axis() >= n)
    COCO_THROW(where(), "axis ", p.axis(), " out of range for scores ", shape_str(bottom[0]->shape()));
  axis_ = p.axis() < 0 ? p.axis() + n : p.axis();
  if (p.top_k() < 1) COCO_THROW(where(), "top_k must be at least 1");
}

void AccuracyLayer::reshape(const Blobs& bottom, const Blobs& top) {
  const Blob& scores = *bottom[0];
  if (axis_ >= scores.num_axes())
    COCO_THROW(where(), "axis ", axis_, " out of range for scores ", shape_str(scores.shape()));
  outer_ = scores.count(0, axis_);
  classes_ = scores.shape(axis_);
  inner_ = scores.count(axis_ + 1);
  if (bottom[1]->count() != outer_ * inner_)
    COCO_THROW(where(), "labels ", shape_str(bottom[1]->shape()), " hold ", bottom[1]->count(), " values, scores ",
               shape_str(scores.shape()), " need ", outer_ * inner_, " (one per sample before and after axis ",
               axis_, ")");
  if (static_cast<int64_t>(param_.accuracy_param().top_k()) > classes_)
    COCO_THROW(where(), "top_k ", param_.accuracy_param().top_k(), " exceeds the ", classes_, " classes");
  top[0]->reshape({});
  if (top.size() > 1) top[1]->reshape({classes_});
#if COCO_WITH_CUDA
  counters_.set_device(scores.device());
  counters_.reshape({scores.device() == Device::kCUDA ? accuracy_counter_count(classes_) : 0});
#endif
}

void AccuracyLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  const auto& p = param_.accuracy_param();
  const float* score = bottom[0]->cdata();
  const float* label = float_labels(*bottom[1], label_floats_);
  const int64_t C = classes_, inner = inner_, top_k = p.top_k();
  std::vector<int64_t> seen(C, 0), hit(C, 0);  // (C) per true class
  int64_t counted = 0, correct = 0;
  for (int64_t o = 0; o < outer_; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      const float lf = label[o * inner + j];
      const int64_t y = static_cast<int64_t>(lf);
      if (p.has_ignore_label() && y == p.ignore_label()) continue;
      if (lf != static_cast<float>(y) || y < 0 || y >= C)
        COCO_THROW(where(), "label ", lf, " at sample ", o * inner + j, " is not a class in [0, ", C, ")");
      const float* s = score + o * C * inner + j;  // class c at s[c * inner]
      const float truth = s[y * inner];
      int64_t greater = 0;
      for (int64_t c = 0; c < C; ++c) greater += s[c * inner] > truth;
      ++counted;
      ++seen[y];
      if (greater < top_k) {
        ++correct;
        ++hit[y];
      }
    }
  top[0]->mutable_data()[0] = counted == 0 ? 0.0f : static_cast<float>(correct) / counted;
  if (top.size() > 1)
    for (int64_t c = 0; c < C; ++c)
      top[1]->mutable_data()[c] = seen[c] == 0 ? 0.0f : static_cast<float>(hit[c]) / seen[c];
}

void AccuracyLayer::backward_cpu(const Blobs&, const std::vector<bool>& propagate_down, const Blobs&) {
  for (bool p : propagate_down)
    if (p) COCO_THROW(where(), "has no gradient (Accuracy is a metric)");
}

#if COCO_WITH_CUDA
// The counts and the division run on the device; the accuracy is written to the
// device top (no copy to the host). A bad label gives NaN instead of the CPU's error.
void AccuracyLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  const auto& p = param_.accuracy_param();
  static_assert(sizeof(float) == sizeof(uint32_t), "counters are stored in float tensors");
  accuracy_forward_cuda(top[0]->mutable_data(), top.size() > 1 ? top[1]->mutable_data() : nullptr,
                        reinterpret_cast<uint32_t*>(counters_.data()), bottom[0]->cdata(), float_labels(*bottom[1], label_floats_), outer_,
                        classes_, inner_, static_cast<int>(p.top_k()), p.has_ignore_label(), p.ignore_label(),
                        cuda::stream());
}

void AccuracyLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  backward_cpu(top, propagate_down, bottom);  // touches no data: only checks propagate_down
}
#else
COCO_CUDA_STUBS(AccuracyLayer)
#endif

}  // namespace coco
