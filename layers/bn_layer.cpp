#include "layers/bn_layer.h"

#include <algorithm>

#include "engine/common.h"
#include "engine/filler.h"

#if COCO_WITH_CUDA
#include "engine/cuda_math.h"
#include "layers/batch_norm_cuda.h"
#endif

namespace coco {

void BNLayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) {
  const auto& p = param_.bn_param();
  if (bottom[0]->num_axes() < 2) COCO_THROW(where(), "bottom must be (N, C, ...), got ", shape_str(bottom[0]->shape()));
  if (!(p.eps() > 0)) COCO_THROW(where(), "eps must be positive, got ", p.eps());
  if (p.decay() < 0 || p.decay() > 1) COCO_THROW(where(), "decay must be in [0, 1], got ", p.decay());
  channels_ = bottom[0]->shape(1);
  if (blobs_.empty()) {
    proto::FillerParameter scale_filler = p.scale_filler();
    if (!p.has_scale_filler()) scale_filler.set_value(1);  // constant 1
    for (int i = 0; i < 4; ++i) blobs_.push_back(std::make_shared<Blob>(Shape{channels_}));
    fill(scale_filler, blobs_[0]->data(), rng);
    fill(p.shift_filler(), blobs_[1]->data(), rng);  // default: constant 0
    blobs_[2]->data().fill(0);
    blobs_[3]->data().fill(1);
  } else {
    // Loaded: the seed's models store (1, C, 1, 1), so counts decide.
    if (blobs_.size() != 4)
      COCO_THROW(where(), "expects 4 parameter blobs (scale, shift, running mean, running variance), got ",
                 blobs_.size());
    for (int i = 0; i < 4; ++i)
      if (blobs_[i]->count() != channels_)
        COCO_THROW(where(), "parameter blob ", i, " has shape ", shape_str(blobs_[i]->shape()), ", expected (",
                   channels_, ")");
  }
}

void BNLayer::reshape(const Blobs& bottom, const Blobs& top) {
  if (bottom[0]->num_axes() < 2 || bottom[0]->shape(1) != channels_)
    COCO_THROW(where(), "bottom ", shape_str(bottom[0]->shape()), " does not have the ", channels_,
               " channels the layer was set up for");
  if (top[0] != bottom[0]) top[0]->reshape_like(*bottom[0]);
  core_.set_device(bottom[0]->device());
  core_.reshape(bottom[0]->shape());
}

BnStats BNLayer::stats_mode() const {
  const auto& p = param_.bn_param();
  const bool global = p.has_use_global_stats() ? p.use_global_stats() : phase() == Phase::kTest && p.moving_average();
  return global ? BnStats::kGlobal : BnStats::kBatch;
}

void BNLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  const auto& p = param_.bn_param();
  const BnDims& d = core_.dims();
  float* mean = core_.mean();
  float* var = core_.var();
  const BnStats used = stats_mode();
  if (used == BnStats::kGlobal) {
    std::copy(blobs_[2]->cdata(), blobs_[2]->cdata() + d.C, mean);
    std::copy(blobs_[3]->cdata(), blobs_[3]->cdata() + d.C, var);
  } else {
    core_.batch_stats(bottom[0]->cdata());
    if (p.moving_average() && phase() == Phase::kTrain) {
      const float decay = p.decay();
      float* run_mean = blobs_[2]->mutable_data();
      float* run_var = blobs_[3]->mutable_data();
      for (int64_t c = 0; c < d.C; ++c) {
        run_mean[c] = decay * run_mean[c] + (1 - decay) * mean[c];
        run_var[c] = decay * run_var[c] + (1 - decay) * var[c];
      }
    }
  }
  core_.normalize(bottom[0]->cdata(), used, p.eps());
  const float* scale = blobs_[0]->cdata();
  const float* shift = blobs_[1]->cdata();
  const float* xh = core_.x_hat();
  float* y = top[0]->mutable_data();
  const int64_t C = d.C, S = d.S, NC = d.N * d.C;
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < NC; ++nc) {
    const float g = scale[nc % C], b = shift[nc % C];
    for (int64_t i = nc * S; i < (nc + 1) * S; ++i) y[i] = g * xh[i] + b;
  }
}

// scale diff += sum dy * x_hat, shift diff += sum dy; bottom diff (=) through the
// normalisation (batch statistics) or as a per-channel affine map (stored ones).
void BNLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  const float* dy = top[0]->cdiff();
  core_.grad_sums(dy);
  float* scale_diff = blobs_[0]->mutable_diff();
  float* shift_diff = blobs_[1]->mutable_diff();
  for (int64_t c = 0; c < channels_; ++c) {
    scale_diff[c] += core_.sum_dy_xhat()[c];
    shift_diff[c] += core_.sum_dy()[c];
  }
  if (propagate_down[0]) core_.backward_input(dy, blobs_[0]->cdata(), bottom[0]->mutable_diff());
}

#if COCO_WITH_CUDA
void BNLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  const auto& p = param_.bn_param();
  const BnDims& d = core_.dims();
  const cuda::Stream s = cuda::stream();
  const BnStats used = stats_mode();
  if (used == BnStats::kGlobal) {
    cuda_copy(d.C, blobs_[2]->cdata(), core_.mean(), s);
    cuda_copy(d.C, blobs_[3]->cdata(), core_.var(), s);
  } else {
    core_.batch_stats_cuda(bottom[0]->cdata(), s);
    if (p.moving_average() && phase() == Phase::kTrain)
      bn_update_running_cuda(blobs_[2]->mutable_data(), blobs_[3]->mutable_data(), core_.mean(), core_.var(),
                             p.decay(), d.C, s);
  }
  core_.normalize_affine_cuda(bottom[0]->cdata(), used, p.eps(), blobs_[0]->cdata(), blobs_[1]->cdata(),
                              top[0]->mutable_data(), s);
}

void BNLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  const cuda::Stream s = cuda::stream();
  const float* dy = top[0]->cdiff();
  core_.grad_sums_cuda(dy, s);
  cuda_axpy(channels_, 1.0f, core_.sum_dy_xhat(), blobs_[0]->mutable_diff(), s);  // scale diff +=
  cuda_axpy(channels_, 1.0f, core_.sum_dy(), blobs_[1]->mutable_diff(), s);  // shift diff +=
  if (propagate_down[0]) core_.backward_input_cuda(dy, blobs_[0]->cdata(), bottom[0]->mutable_diff(), s);
}
#else
COCO_CUDA_STUBS(BNLayer)
#endif

}  // namespace coco
