#include "layers/batch_norm_layer.h"

#include <algorithm>

#include "engine/common.h"

#if COCO_WITH_CUDA
#include "layers/batch_norm_cuda.h"
#endif

namespace coco {

void BatchNormLayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng&) {
  const auto& p = param_.batch_norm_param();
  if (bottom[0]->num_axes() < 1) COCO_THROW(where(), "bottom must have at least one axis");
  if (!(p.eps() > 0)) COCO_THROW(where(), "eps must be positive, got ", p.eps());
  if (p.moving_average_fraction() < 0 || p.moving_average_fraction() > 1)
    COCO_THROW(where(), "moving_average_fraction must be in [0, 1], got ", p.moving_average_fraction());
  channels_ = bn_dims(bottom[0]->shape()).C;
  const Shape shapes[3] = {{channels_}, {channels_}, {1}};
  if (blobs_.empty()) {
    for (const auto& s : shapes) blobs_.push_back(std::make_shared<Blob>(s));  // zeros
  } else {
    // Loaded: Caffe models may store these with extra unit axes, so counts decide.
    if (blobs_.size() != 3) COCO_THROW(where(), "expects 3 parameter blobs (mean, variance, factor), got ", blobs_.size());
    for (int i = 0; i < 3; ++i)
      if (blobs_[i]->count() != shapes[i][0])
        COCO_THROW(where(), "parameter blob ", i, " has shape ", shape_str(blobs_[i]->shape()), ", expected ",
                   shape_str(shapes[i]));
  }
}

void BatchNormLayer::reshape(const Blobs& bottom, const Blobs& top) {
  const int64_t C = bn_dims(bottom[0]->shape()).C;
  if (C != channels_)
    COCO_THROW(where(), "bottom ", shape_str(bottom[0]->shape()), " has ", C, " channels, the layer was set up for ",
               channels_);
  if (top[0] != bottom[0]) top[0]->reshape_like(*bottom[0]);
  core_.set_device(bottom[0]->device());
  core_.reshape(bottom[0]->shape());
}

float BatchNormLayer::variance_correction(const BnDims& d) {
  const int64_t m = d.N * d.S;
  return m > 1 ? static_cast<float>(m) / (m - 1) : 1.0f;
}

BnStats BatchNormLayer::stats_mode() const {
  const auto& p = param_.batch_norm_param();
  const bool global = p.has_use_global_stats() ? p.use_global_stats() : phase() == Phase::kTest;
  return global ? BnStats::kGlobal : BnStats::kBatch;
}

void BatchNormLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  const auto& p = param_.batch_norm_param();
  const BnDims& d = core_.dims();
  float* mean = core_.mean();
  float* var = core_.var();
  const BnStats used = stats_mode();
  if (used == BnStats::kGlobal) {
    const float f = blobs_[2]->cdata()[0];
    const float k = f == 0 ? 0.0f : 1.0f / f;
    for (int64_t c = 0; c < d.C; ++c) {
      mean[c] = k * blobs_[0]->cdata()[c];
      var[c] = k * blobs_[1]->cdata()[c];
    }
  } else {
    core_.batch_stats(bottom[0]->cdata());
    const float maf = p.moving_average_fraction();
    const float correction = variance_correction(d);
    float* sum_mean = blobs_[0]->mutable_data();
    float* sum_var = blobs_[1]->mutable_data();
    float* factor = blobs_[2]->mutable_data();
    factor[0] = factor[0] * maf + 1;
    for (int64_t c = 0; c < d.C; ++c) {
      sum_mean[c] = maf * sum_mean[c] + mean[c];
      sum_var[c] = maf * sum_var[c] + correction * var[c];
    }
  }
  core_.normalize(bottom[0]->cdata(), used, p.eps());
  std::copy(core_.x_hat(), core_.x_hat() + bottom[0]->count(), top[0]->mutable_data());
}

// bottom diff (=) through the normalisation; the statistics are state, not weights.
void BatchNormLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  if (!propagate_down[0]) return;
  core_.grad_sums(top[0]->cdiff());
  core_.backward_input(top[0]->cdiff(), nullptr, bottom[0]->mutable_diff());
}

#if COCO_WITH_CUDA
void BatchNormLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  const auto& p = param_.batch_norm_param();
  const BnDims& d = core_.dims();
  const cuda::Stream s = cuda::stream();
  const BnStats used = stats_mode();
  if (used == BnStats::kGlobal) {
    batch_norm_global_stats_cuda(core_.mean(), core_.var(), blobs_[0]->cdata(), blobs_[1]->cdata(),
                                 blobs_[2]->cdata(), d.C, s);
  } else {
    core_.batch_stats_cuda(bottom[0]->cdata(), s);
    batch_norm_update_sums_cuda(blobs_[0]->mutable_data(), blobs_[1]->mutable_data(), blobs_[2]->mutable_data(),
                                core_.mean(), core_.var(), p.moving_average_fraction(), variance_correction(d), d.C,
                                s);
  }
  core_.normalize_cuda(bottom[0]->cdata(), used, p.eps(), top[0]->mutable_data(), s);
}

void BatchNormLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down,
                                   const Blobs& bottom) {
  if (!propagate_down[0]) return;
  const cuda::Stream s = cuda::stream();
  // The sums are only read with batch statistics (bn_backward_input).
  if (core_.used() == BnStats::kBatch) core_.grad_sums_cuda(top[0]->cdiff(), s);
  core_.backward_input_cuda(top[0]->cdiff(), nullptr, bottom[0]->mutable_diff(), s);
}
#else
COCO_CUDA_STUBS(BatchNormLayer)
#endif

}  // namespace coco
