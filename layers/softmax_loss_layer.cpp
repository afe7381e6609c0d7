#include "layers/softmax_loss_layer.h"

#include <algorithm>
#include <cmath>

#include "engine/common.h"
#include "layers/labels.h"
#if COCO_WITH_CUDA
#include "engine/cuda_math.h"
#include "layers/softmax_loss_cuda.h"
#endif

namespace coco {

void SoftmaxWithLossLayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) {
  const auto& lp = param_.loss_param();
  has_ignore_label_ = lp.has_ignore_label();
  ignore_label_ = lp.ignore_label();
  if (!lp.has_normalization() && lp.has_normalize()) {
    normalization_ = lp.normalize() ? LossNormalization::kValid : LossNormalization::kBatchSize;
  } else {
    switch (lp.normalization()) {
      case proto::LossParameter::FULL: normalization_ = LossNormalization::kFull; break;
      case proto::LossParameter::VALID: normalization_ = LossNormalization::kValid; break;
      case proto::LossParameter::BATCH_SIZE: normalization_ = LossNormalization::kBatchSize; break;
      case proto::LossParameter::NONE: normalization_ = LossNormalization::kNone; break;
    }
  }
}

void SoftmaxWithLossLayer::reshape(const Blobs& bottom, const Blobs& top) {
  const Blob& scores = *bottom[0];
  const int a = param_.softmax_param().axis();
  const int na = scores.num_axes();
  if (a < -na || a >= na)
    COCO_THROW(where(), "softmax_param.axis ", a, " is out of range for scores of shape ", shape_str(scores.shape()));
  axis_ = a < 0 ? a + na : a;
  outer_ = scores.count(0, axis_);
  classes_ = scores.shape(axis_);
  inner_ = scores.count(axis_ + 1);
  if (classes_ < 1) COCO_THROW(where(), "scores ", shape_str(scores.shape()), " have no classes on axis ", axis_);
  if (bottom[1]->count() != outer_ * inner_)
    COCO_THROW(where(), "labels ", shape_str(bottom[1]->shape()), " must hold ", outer_ * inner_,
               " values (one per position of scores ", shape_str(scores.shape()), " outside axis ", axis_,
               "), got ", bottom[1]->count());
  top[0]->reshape({1});
  prob_.set_device(scores.device());
  prob_.reshape(scores.shape());
#if COCO_WITH_CUDA
  const bool on_cuda = scores.device() == Device::kCUDA;
  losses_dev_.set_device(scores.device());
  losses_dev_.reshape({on_cuda ? 2 * (1 + outer_ * inner_) : 0});
  status_dev_.set_device(scores.device());
  status_dev_.reshape({on_cuda ? outer_ * inner_ : 0});
#endif
  if (top.size() > 1) top[1]->reshape(scores.shape());
  losses_.resize(static_cast<size_t>(outer_ * inner_));
}

double SoftmaxWithLossLayer::normalizer(int64_t valid_count) const {
  double n = 1;
  switch (normalization_) {
    case LossNormalization::kFull: n = static_cast<double>(outer_ * inner_); break;
    case LossNormalization::kValid: n = static_cast<double>(valid_count); break;
    case LossNormalization::kBatchSize: n = static_cast<double>(outer_); break;
    case LossNormalization::kNone: n = 1; break;
  }
  return std::max(1.0, n);  // as Caffe: an all-ignored batch gives loss 0, not NaN
}

void SoftmaxWithLossLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  const float* z = bottom[0]->cdata();      // (outer, C, inner)
  const float* label = float_labels(*bottom[1], label_floats_);  // (outer * inner)
  float* p = prob_.data();                  // (outer, C, inner)
  const int64_t c = classes_, inner = inner_, positions = outer_ * inner_;

  // Labels first, serially, so a bad one is reported deterministically.
  valid_count_ = 0;
  for (int64_t q = 0; q < positions; ++q) {
    const float l = label[q];
    if (ignored(l)) continue;
    if (!(l >= 0 && l < static_cast<float>(c)) || l != std::floor(l))
      COCO_THROW(where(), "label ", l, " at index ", q, " is not a class id in [0, ", c, ")");
    ++valid_count_;
  }

#pragma omp parallel for schedule(static)
  for (int64_t q = 0; q < positions; ++q) {
    const int64_t o = q / inner, in = q % inner;
    const float* zq = z + o * c * inner + in;  // stride inner
    float* pq = p + o * c * inner + in;
    float m = zq[0];
    for (int64_t k = 1; k < c; ++k) m = std::max(m, zq[k * inner]);
    double s = 0;
    for (int64_t k = 0; k < c; ++k) {
      const float e = std::exp(zq[k * inner] - m);
      pq[k * inner] = e;
      s += e;
    }
    const float inv = static_cast<float>(1.0 / s);
    for (int64_t k = 0; k < c; ++k) pq[k * inner] *= inv;
    losses_[q] = ignored(label[q]) ? 0.0 : std::log(s) - (zq[static_cast<int64_t>(label[q]) * inner] - m);
  }
  double total = 0;  // fixed order: deterministic
  for (int64_t q = 0; q < positions; ++q) total += losses_[q];
  top[0]->mutable_data()[0] = static_cast<float>(total / normalizer(valid_count_));
  if (top.size() > 1) top[1]->data().copy_from(prob_);
}

void SoftmaxWithLossLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                                        const Blobs& bottom) {
  if (propagate_down.size() > 1 && propagate_down[1])
    COCO_THROW(where(), "cannot backpropagate to the labels (bottom 1)");
  if (!propagate_down[0]) return;
  const float* p = prob_.data();            // (outer, C, inner)
  const float* label = float_labels(*bottom[1], label_floats_);  // (outer * inner)
  float* dz = bottom[0]->mutable_diff();    // (outer, C, inner)
  const int64_t c = classes_, inner = inner_, positions = outer_ * inner_;
  const float w = static_cast<float>(top[0]->cdiff()[0] / normalizer(valid_count_));
#pragma omp parallel for schedule(static)
  for (int64_t q = 0; q < positions; ++q) {
    const int64_t o = q / inner, in = q % inner;
    const float* pq = p + o * c * inner + in;
    float* dq = dz + o * c * inner + in;
    if (ignored(label[q])) {
      for (int64_t k = 0; k < c; ++k) dq[k * inner] = 0;
      continue;
    }
    const int64_t l = static_cast<int64_t>(label[q]);
    for (int64_t k = 0; k < c; ++k) dq[k * inner] = w * (pq[k * inner] - (k == l ? 1.0f : 0.0f));
  }
}

#if COCO_WITH_CUDA
// The loss is reduced and normalised on the device and written to the device top; a
// label the CPU path would reject makes the loss NaN (no host synchronisation to
// throw from) and gets zero gradient.
void SoftmaxWithLossLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  static_assert(sizeof(float) == sizeof(int32_t), "status is stored in a float tensor");
  double* state = reinterpret_cast<double*>(losses_dev_.data());  // [normalizer, losses...]
  const bool valid = normalization_ == LossNormalization::kValid;
  // normalizer() for the other modes depends on shapes only (the count is unused).
  softmax_loss_forward_cuda(top[0]->mutable_data(), prob_.data(), state + 1,
                            reinterpret_cast<int32_t*>(status_dev_.data()), state, bottom[0]->cdata(),
                            float_labels(*bottom[1], label_floats_), outer_, classes_, inner_, has_ignore_label_, ignore_label_, valid,
                            valid ? 1.0 : normalizer(0), cuda::stream());
  if (top.size() > 1) cuda_copy(prob_.count(), prob_.data(), top[1]->mutable_data(), cuda::stream());
}

void SoftmaxWithLossLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down,
                                         const Blobs& bottom) {
  if (propagate_down.size() > 1 && propagate_down[1])
    COCO_THROW(where(), "cannot backpropagate to the labels (bottom 1)");
  if (!propagate_down[0]) return;
  softmax_loss_backward_cuda(bottom[0]->mutable_diff(), prob_.data(), float_labels(*bottom[1], label_floats_),
                             reinterpret_cast<const int32_t*>(status_dev_.data()), top[0]->cdiff(),
                             reinterpret_cast<const double*>(losses_dev_.data()), outer_, classes_, inner_,
                             cuda::stream());
}
#else
COCO_CUDA_STUBS(SoftmaxWithLossLayer)
#endif

}  // namespace coco
