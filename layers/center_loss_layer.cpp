#include "layers/center_loss_layer.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "engine/common.h"
#include "layers/labels.h"
#include "engine/filler.h"
#if COCO_WITH_CUDA
#include "layers/center_loss_cuda.h"
#endif

namespace coco {

void CenterLossLayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) {
  const auto& cp = param_.center_loss_param();
  num_classes_ = cp.num_output();
  if (num_classes_ < 1) COCO_THROW(where(), "center_loss_param.num_output (the class count) must be >= 1");
  update_ = cp.center_update() == proto::CenterLossParameter::GRADIENT ? CenterUpdate::kGradient
                                                                        : CenterUpdate::kSeed;
  const int na = bottom[0]->num_axes();
  const int a = cp.axis();
  if (a < -na || a >= na)
    COCO_THROW(where(), "center_loss_param.axis ", a, " is out of range for bottom ", shape_str(bottom[0]->shape()));
  axis_ = a < 0 ? a + na : a;
  dim_ = bottom[0]->count(axis_);
  if (dim_ < 1) COCO_THROW(where(), "bottom ", shape_str(bottom[0]->shape()), " has no features from axis ", axis_);
  init_params({{"centres", {num_classes_, dim_}, &cp.center_filler()}}, rng);
}

void CenterLossLayer::reshape(const Blobs& bottom, const Blobs& top) {
  if (axis_ >= bottom[0]->num_axes() || bottom[0]->count(axis_) != dim_)
    COCO_THROW(where(), "bottom ", shape_str(bottom[0]->shape()), " must have ", dim_,
               " features from axis ", axis_, " (the centres' dimension)");
  num_ = bottom[0]->count(0, axis_);
  if (bottom[1]->count() != num_)
    COCO_THROW(where(), "labels ", shape_str(bottom[1]->shape()), " must hold one value per sample (", num_,
               "), got ", bottom[1]->count());
  top[0]->reshape({1});
  distance_.set_device(bottom[0]->device());
  distance_.reshape({num_, dim_});
#if COCO_WITH_CUDA
  const bool on_cuda = bottom[0]->device() == Device::kCUDA;
  rows_dev_.set_device(bottom[0]->device());
  rows_dev_.reshape({on_cuda ? 2 * num_ : 0});
  chain_dev_.set_device(bottom[0]->device());
  chain_dev_.reshape({on_cuda ? 2 * num_ : 0});
#endif
}

void CenterLossLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  const int64_t n = num_, d = dim_, k = num_classes_;
  const float* x = bottom[0]->cdata();      // (N, D)
  const float* label = float_labels(*bottom[1], label_floats_);  // (N)
  const float* c = blobs_[0]->cdata();      // (K, D)
  float* dist = distance_.data();           // (N, D)
  for (int64_t i = 0; i < n; ++i) {
    const float l = label[i];
    if (!(l >= 0 && l < static_cast<float>(k)) || l != std::floor(l))
      COCO_THROW(where(), "label ", l, " at index ", i, " is not a class id in [0, ", k, ")");
  }
  std::vector<double> row(static_cast<size_t>(n));  // per-sample ||x_i - c_{y_i}||^2
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* ci = c + static_cast<int64_t>(label[i]) * d;
    double s = 0;
    for (int64_t j = 0; j < d; ++j) {
      const float v = x[i * d + j] - ci[j];
      dist[i * d + j] = v;
      s += static_cast<double>(v) * v;
    }
    row[i] = s;
  }
  double total = 0;  // fixed order: deterministic
  for (int64_t i = 0; i < n; ++i) total += row[i];
  top[0]->mutable_data()[0] = n > 0 ? static_cast<float>(total / (2.0 * n)) : 0.0f;
}

void CenterLossLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                                   const Blobs& bottom) {
  if (propagate_down.size() > 1 && propagate_down[1])
    COCO_THROW(where(), "cannot backpropagate to the labels (bottom 1)");
  const int64_t n = num_, d = dim_, k = num_classes_;
  if (n == 0) return;
  const float top_diff = top[0]->cdiff()[0];
  const float* label = float_labels(*bottom[1], label_floats_);  // (N)
  const float* dist = distance_.data();     // (N, D): x_i - c_{y_i}

  // Centres (K, D) +=. Samples bucketed by class, in batch order, so each class's
  // sum runs in a fixed order on one thread: deterministic without atomics.
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(k));
  for (int64_t i = 0; i < n; ++i) members[static_cast<size_t>(label[i])].push_back(i);
  float* dc = blobs_[0]->mutable_diff();
  const CenterUpdate update = update_;
  const double seed_scale = ctx().loss_scale;
#pragma omp parallel
  {
    std::vector<double> acc(static_cast<size_t>(d));  // (D): sum_i (c_j - x_i)
#pragma omp for schedule(static)
    for (int64_t j = 0; j < k; ++j) {
      const auto& mj = members[j];
      if (mj.empty()) continue;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t i : mj)
        for (int64_t col = 0; col < d; ++col) acc[col] -= dist[i * d + col];
      // SEED's step does not read the top diff: the loss scale (FP16) enters here,
      // as it does through the top diff everywhere else.
      const double coef = update == CenterUpdate::kSeed ? seed_scale / (1.0 + static_cast<double>(mj.size()))
                                                        : static_cast<double>(top_diff) / static_cast<double>(n);
      float* dcj = dc + j * d;
      for (int64_t col = 0; col < d; ++col) dcj[col] += static_cast<float>(coef * acc[col]);
    }
  }

  if (propagate_down[0]) {  // bottom diff (N, D) = (x_i - c_{y_i}) * top_diff / N
    float* dx = bottom[0]->mutable_diff();
    const float s = top_diff / static_cast<float>(n);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n * d; ++i) dx[i] = s * dist[i];
  }
}

#if COCO_WITH_CUDA
// The loss is reduced on the device and written to the device top. A label the CPU
// path would reject makes the loss NaN (no host synchronisation to throw from); that
// sample gets zero gradient and moves no centre.
void CenterLossLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  center_loss_forward_cuda(top[0]->mutable_data(), distance_.data(), reinterpret_cast<double*>(rows_dev_.data()),
                           bottom[0]->cdata(), float_labels(*bottom[1], label_floats_), blobs_[0]->cdata(), num_, dim_, num_classes_,
                           cuda::stream());
}

void CenterLossLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down,
                                    const Blobs& bottom) {
  if (propagate_down.size() > 1 && propagate_down[1])
    COCO_THROW(where(), "cannot backpropagate to the labels (bottom 1)");
  static_assert(sizeof(float) == sizeof(int32_t), "chains are stored in a float tensor");
  if (num_ > INT32_MAX) COCO_THROW(where(), "the CUDA path takes at most 2^31 - 1 samples, got ", num_);
  center_loss_backward_cuda(blobs_[0]->mutable_diff(), propagate_down[0] ? bottom[0]->mutable_diff() : nullptr,
                            reinterpret_cast<int32_t*>(chain_dev_.data()), distance_.data(), float_labels(*bottom[1], label_floats_),
                            top[0]->cdiff(), num_, dim_, num_classes_, update_ == CenterUpdate::kSeed,
                            ctx().loss_scale, cuda::stream());
}
#else
COCO_CUDA_STUBS(CenterLossLayer)
#endif

}  // namespace coco
