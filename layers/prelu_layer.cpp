#include "layers/prelu_layer.h"

#include "engine/common.h"
#include "engine/cpu_clones.h"
#include "engine/filler.h"

#if COCO_WITH_CUDA
#include "layers/prelu_cuda.h"
#endif

namespace coco {

namespace {
// The per-plane loops, out of the OpenMP regions so that they are cloned for
// AVX2 (engine/cpu_clones.h); this file is built with -fno-trapping-math so that
// the selects vectorise (GCC keeps a float compare as a branch while it may trap).

// y = x > 0 ? x : slope * x; keep (when not null) gets x, for an in-place backward.
COCO_CPU_CLONES void prelu_plane(const float* x, float* y, float* keep, float slope, int64_t n) {
  if (keep) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[i];
      keep[i] = v;
      y[i] = v > 0 ? v : slope * v;
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0 ? x[i] : slope * x[i];
  }
}

// dx (=, when not null) = dy * (x > 0 ? 1 : slope); returns sum over x <= 0 of dy * x.
COCO_CPU_CLONES float prelu_plane_backward(const float* x, const float* dy, float* dx, float slope, int64_t n) {
  float acc = 0.f;
  if (dx) {
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; ++i) {
      acc += x[i] <= 0 ? dy[i] * x[i] : 0.f;
      dx[i] = x[i] > 0 ? dy[i] : slope * dy[i];
    }
  } else {
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; ++i) acc += x[i] <= 0 ? dy[i] * x[i] : 0.f;
  }
  return acc;
}
}  // namespace

void PReLULayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) {
  const auto& p = param_.prelu_param();
  if (bottom[0]->num_axes() < 2)
    COCO_THROW(where(), "bottom must be (N, C, ...), got ", shape_str(bottom[0]->shape()));
  channels_ = bottom[0]->shape(1);
  const int64_t n_slopes = p.channel_shared() ? 1 : channels_;
  if (blobs_.empty()) {
    blobs_.push_back(std::make_shared<Blob>(Shape{n_slopes}));
    proto::FillerParameter filler = p.filler();
    if (!p.has_filler()) filler.set_value(0.25f);  // constant 0.25, Caffe's default
    fill(filler, blobs_[0]->data(), rng);
  } else if (blobs_.size() != 1 || blobs_[0]->count() != n_slopes) {
    COCO_THROW(where(), "expects one slope blob of ", n_slopes, " value(s)",
               p.channel_shared() ? " (channel_shared)" : "", ", got ", blobs_.size(), " blob(s)",
               blobs_.empty() ? "" : " of shape " + shape_str(blobs_[0]->shape()));
  }
}

void PReLULayer::reshape(const Blobs& bottom, const Blobs& top) {
  if (bottom[0]->num_axes() < 2 || bottom[0]->shape(1) != channels_)
    COCO_THROW(where(), "bottom ", shape_str(bottom[0]->shape()), " does not have the ", channels_,
               " channels the layer was set up for");
  if (top[0] != bottom[0]) top[0]->reshape_like(*bottom[0]);
  // Scratch follows the net's device (the CUDA path keeps its copies there).
  bottom_copy_.set_device(bottom[0]->device());
  if (top[0] == bottom[0]) bottom_copy_.reshape(bottom[0]->shape());
  if (bottom[0]->device() == Device::kCUDA) {
    plane_sums_dev_.set_device(Device::kCUDA);
    plane_sums_dev_.reshape({bottom[0]->count(0, 2)});
  }
}

void PReLULayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  const int64_t C = channels_, S = bottom[0]->count(2), NC = bottom[0]->count(0, 2);
  const bool shared = param_.prelu_param().channel_shared();
  const bool in_place = top[0] == bottom[0];
  if (in_place) bottom_copy_.reshape(bottom[0]->shape());
  const float* x = bottom[0]->cdata();
  const float* a = blobs_[0]->cdata();
  float* y = top[0]->mutable_data();
  float* keep = in_place ? bottom_copy_.data() : nullptr;
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < NC; ++nc)
    prelu_plane(x + nc * S, y + nc * S, keep ? keep + nc * S : nullptr, a[shared ? 0 : nc % C], S);
}

// slope diff += sum over x <= 0 of dy * x; bottom diff (=) dy * (x > 0 ? 1 : a).
// One pass per (n, c) plane computes both; the plane sums are then added per
// channel in a fixed order (deterministic for any thread count).
void PReLULayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  const int64_t N = bottom[0]->shape(0), C = channels_, S = bottom[0]->count(2), NC = N * C;
  const bool shared = param_.prelu_param().channel_shared();
  const float* x = top[0] == bottom[0] ? bottom_copy_.data() : bottom[0]->cdata();
  const float* dy = top[0]->cdiff();
  const float* a = blobs_[0]->cdata();
  float* dx = propagate_down[0] ? bottom[0]->mutable_diff() : nullptr;
  plane_sums_.resize(NC);
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < NC; ++nc)
    plane_sums_[nc] =
        prelu_plane_backward(x + nc * S, dy + nc * S, dx ? dx + nc * S : nullptr, a[shared ? 0 : nc % C], S);
  float* da = blobs_[0]->mutable_diff();
  double total = 0;
  for (int64_t c = 0; c < C; ++c) {
    double acc = 0;
    for (int64_t n = 0; n < N; ++n) acc += plane_sums_[n * C + c];
    if (shared)
      total += acc;
    else
      da[c] += static_cast<float>(acc);
  }
  if (shared) da[0] += static_cast<float>(total);
}

#if COCO_WITH_CUDA
void PReLULayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  const bool in_place = top[0] == bottom[0];
  if (in_place) bottom_copy_.reshape(bottom[0]->shape());
  prelu_forward_cuda(top[0]->mutable_data(), in_place ? bottom_copy_.data() : nullptr, bottom[0]->cdata(),
                     blobs_[0]->cdata(), bottom[0]->count(0, 2), channels_, bottom[0]->count(2),
                     param_.prelu_param().channel_shared(), cuda::stream());
}

// As backward_cpu: dx (=) and per-plane sums in one pass, then the slope diff (+=)
// summed per channel over n in a fixed order (no atomics).
void PReLULayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  const int64_t N = bottom[0]->shape(0);
  const float* x = top[0] == bottom[0] ? bottom_copy_.data() : bottom[0]->cdata();
  plane_sums_dev_.reshape({N * channels_});
  prelu_backward_cuda(propagate_down[0] ? bottom[0]->mutable_diff() : nullptr, plane_sums_dev_.data(),
                      blobs_[0]->mutable_diff(), x, top[0]->cdiff(), blobs_[0]->cdata(), N, channels_,
                      bottom[0]->count(2), param_.prelu_param().channel_shared(), cuda::stream());
}
#else
COCO_CUDA_STUBS(PReLULayer)
#endif

}  // namespace coco
