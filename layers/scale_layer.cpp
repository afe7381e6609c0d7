#include "layers/scale_layer.h"

#include "engine/common.h"
#include "engine/filler.h"

#if COCO_WITH_CUDA
#include "engine/cuda_math.h"
#include "layers/scale_cuda.h"
#endif

namespace coco {

void ScaleLayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) {
  const auto& p = param_.scale_param();
  const Blob& x = *bottom[0];
  const int n = x.num_axes();
  if (p.axis() < -n || p.axis() >= n)
    COCO_THROW(where(), "axis ", p.axis(), " out of range for bottom ", shape_str(x.shape()));
  axis_ = p.axis() < 0 ? p.axis() + n : p.axis();
  if (bottom.size() == 2) {
    const Blob& s = *bottom[1];
    if (axis_ + s.num_axes() > n)
      COCO_THROW(where(), "scale bottom ", shape_str(s.shape()), " does not fit bottom ", shape_str(x.shape()),
                 " from axis ", axis_);
  } else {
    if (p.num_axes() < -1) COCO_THROW(where(), "num_axes must be -1 (to the end) or >= 0, got ", p.num_axes());
    const int end = p.num_axes() == -1 ? n : axis_ + p.num_axes();
    if (end > n)
      COCO_THROW(where(), "axis ", axis_, " + num_axes ", p.num_axes(), " exceeds the ", n, " axes of bottom ",
                 shape_str(x.shape()));
    param_shape_.assign(x.shape().begin() + axis_, x.shape().begin() + end);
  }
  // The bias has the scale's shape; with a scale bottom, that bottom's.
  const Shape bias_shape = bottom.size() == 2 ? bottom[1]->shape() : param_shape_;
  const size_t n_blobs = (bottom.size() == 1 ? 1 : 0) + (p.bias_term() ? 1 : 0);
  if (blobs_.empty()) {
    if (bottom.size() == 1) {
      blobs_.push_back(std::make_shared<Blob>(param_shape_));
      proto::FillerParameter filler = p.filler();
      if (!p.has_filler()) filler.set_value(1);  // constant 1, Caffe's default
      fill(filler, blobs_.back()->data(), rng);
    }
    if (p.bias_term()) {
      blobs_.push_back(std::make_shared<Blob>(bias_shape));
      fill(p.bias_filler(), blobs_.back()->data(), rng);  // default constant 0
    }
  } else {
    if (blobs_.size() != n_blobs)
      COCO_THROW(where(), "expects ", n_blobs, " parameter blob(s), got ", blobs_.size());
    for (auto& b : blobs_)
      if (b->count() != shape_count(bias_shape))
        COCO_THROW(where(), "parameter blob of shape ", shape_str(b->shape()), ", expected ", shape_str(bias_shape));
  }
}

Shape ScaleLayer::scale_shape(const Blobs& bottom) const {
  return bottom.size() == 2 ? bottom[1]->shape() : param_shape_;
}

void ScaleLayer::reshape(const Blobs& bottom, const Blobs& top) {
  const Blob& x = *bottom[0];
  const Shape s = scale_shape(bottom);
  const int k = static_cast<int>(s.size());
  bool fits = axis_ + k <= x.num_axes();
  for (int i = 0; fits && i < k; ++i) fits = x.shape()[axis_ + i] == s[i];
  if (!fits)
    COCO_THROW(where(), "scale of shape ", shape_str(s), " does not match bottom ", shape_str(x.shape()),
               " from axis ", axis_);
  if (bottom.size() == 2 && top[0] == bottom[1]) COCO_THROW(where(), "top may not be the scale bottom");
  outer_ = x.count(0, axis_);
  dim_ = shape_count(s);
  inner_ = x.count(axis_ + k);
  if (top[0] != bottom[0]) top[0]->reshape_like(x);
  // The in-place copy of x lives on x's device; sized here, before forward.
  bottom_copy_.set_device(x.device());
  if (top[0] == bottom[0]) bottom_copy_.reshape(x.shape());
}

void ScaleLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  if (top[0] == bottom[0]) bottom_copy_.copy_from(bottom[0]->data());
  const bool learned = bottom.size() == 1;
  const float* s = learned ? blobs_[0]->cdata() : bottom[1]->cdata();
  const float* b = param_.scale_param().bias_term() ? blobs_.back()->cdata() : nullptr;
  const float* x = bottom[0]->cdata();
  float* y = top[0]->mutable_data();
  const int64_t D = dim_, inner = inner_, rows = outer_ * dim_;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t d = r % D;
    const float sd = s[d], bd = b ? b[d] : 0.0f;
    for (int64_t i = r * inner; i < (r + 1) * inner; ++i) y[i] = x[i] * sd + bd;
  }
}

// Scale diff: += sum dy * x (learned) or = (bottom 1); bias diff += sum dy;
// bottom 0 diff (=) dy * s.
void ScaleLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  const bool learned = bottom.size() == 1;
  const bool bias = param_.scale_param().bias_term();
  const float* x = top[0] == bottom[0] ? bottom_copy_.data() : bottom[0]->cdata();
  const float* dy = top[0]->cdiff();
  const float* s = learned ? blobs_[0]->cdata() : bottom[1]->cdata();
  const int64_t D = dim_, inner = inner_, outer = outer_;
  const bool want_scale = learned || propagate_down[1];
  if (want_scale || bias) {
    float* ds = want_scale ? (learned ? blobs_[0]->mutable_diff() : bottom[1]->mutable_diff()) : nullptr;
    float* db = bias ? blobs_.back()->mutable_diff() : nullptr;
    // One scale element per thread, summed over outer and inner in a fixed order.
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < D; ++d) {
      double acc_s = 0, acc_b = 0;
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = (o * D + d) * inner; i < (o * D + d + 1) * inner; ++i) {
          acc_s += static_cast<double>(dy[i]) * x[i];
          acc_b += dy[i];
        }
      if (ds) ds[d] = learned ? ds[d] + static_cast<float>(acc_s) : static_cast<float>(acc_s);
      if (db) db[d] += static_cast<float>(acc_b);
    }
  }
  if (!propagate_down[0]) return;
  float* dx = bottom[0]->mutable_diff();
  const int64_t rows = outer * D;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float sd = s[r % D];
    for (int64_t i = r * inner; i < (r + 1) * inner; ++i) dx[i] = dy[i] * sd;
  }
}

#if COCO_WITH_CUDA
void ScaleLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  if (top[0] == bottom[0]) {
    bottom_copy_.reshape(bottom[0]->shape());
    cuda_copy(bottom[0]->count(), bottom[0]->cdata(), bottom_copy_.data(), cuda::stream());
  }
  const bool learned = bottom.size() == 1;
  const float* s = learned ? blobs_[0]->cdata() : bottom[1]->cdata();
  const float* b = param_.scale_param().bias_term() ? blobs_.back()->cdata() : nullptr;
  scale_forward_cuda(top[0]->mutable_data(), bottom[0]->cdata(), s, b, outer_, dim_, inner_, cuda::stream());
}

// As backward_cpu: the scale diff (+= learned, = bottom 1) and bias diff (+=) are sums
// over outer and inner in double (deterministic, layers/scale_layer.cu); bottom 0
// diff (=) dy * s.
void ScaleLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  const bool learned = bottom.size() == 1;
  const bool bias = param_.scale_param().bias_term();
  const float* x = top[0] == bottom[0] ? bottom_copy_.data() : bottom[0]->cdata();
  const float* dy = top[0]->cdiff();
  const float* s = learned ? blobs_[0]->cdata() : bottom[1]->cdata();
  const bool want_scale = learned || propagate_down[1];
  if (want_scale || bias) {
    float* ds = want_scale ? (learned ? blobs_[0]->mutable_diff() : bottom[1]->mutable_diff()) : nullptr;
    float* db = bias ? blobs_.back()->mutable_diff() : nullptr;
    void* ws = cuda::workspace(scale_param_backward_workspace_bytes(outer_, dim_, inner_));
    scale_param_backward_cuda(ds, db, dy, x, outer_, dim_, inner_, learned, ws, cuda::stream());
  }
  if (!propagate_down[0]) return;
  scale_bottom_backward_cuda(bottom[0]->mutable_diff(), dy, s, outer_, dim_, inner_, cuda::stream());
}
#else
COCO_CUDA_STUBS(ScaleLayer)
#endif

}  // namespace coco
