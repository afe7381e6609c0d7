#include "layers/dropout_layer.h"

#include <algorithm>

#include "engine/common.h"

#if COCO_WITH_CUDA
#include "engine/cuda_math.h"
#include "layers/dropout_cuda.h"
#endif

namespace coco {

uint64_t DropoutLayer::mask_stream(const std::string& layer_name, int64_t iter, int batch_in_iter) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64: stable across compilers, unlike std::hash
  for (unsigned char ch : layer_name) h = (h ^ ch) * 0x100000001b3ull;
  const uint64_t stream = mix64(h ^ mix64(static_cast<uint64_t>(iter)));
  // The first batch of an iteration keeps the stream it had before iter_size existed.
  return batch_in_iter == 0 ? stream : mix64(stream ^ static_cast<uint64_t>(batch_in_iter));
}

void DropoutLayer::layer_setup(const Blobs&, const Blobs&, Rng&) {
  const float p = param_.dropout_param().dropout_ratio();
  if (!(p >= 0 && p < 1)) COCO_THROW(where(), "dropout_ratio must be in [0, 1), got ", p);
}

void DropoutLayer::reshape(const Blobs& bottom, const Blobs& top) {
  if (top[0] != bottom[0]) top[0]->reshape_like(*bottom[0]);
}

void DropoutLayer::apply(const float* in, int64_t n, float* out) const {
  if (phase() == Phase::kTest) {
    if (out != in) std::copy(in, in + n, out);
    return;
  }
  const float p = param_.dropout_param().dropout_ratio();
  const float scale = 1.0f / (1.0f - p);
  const uint64_t seed = ctx().seed, stream = mask_stream(name(), ctx().iter, ctx().batch_in_iter);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    out[i] = uniform01(seed, stream, static_cast<uint64_t>(i)) >= p ? in[i] * scale : 0.0f;
}

void DropoutLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  apply(bottom[0]->cdata(), bottom[0]->count(), top[0]->mutable_data());
}

// bottom diff (=) top diff through the same mask, redrawn from the same counters.
void DropoutLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  if (!propagate_down[0]) return;
  apply(top[0]->cdiff(), top[0]->count(), bottom[0]->mutable_diff());
}

#if COCO_WITH_CUDA
void DropoutLayer::apply_cuda(const float* in, int64_t n, float* out) const {
  if (phase() == Phase::kTest) {
    if (out != in) cuda_copy(n, in, out, cuda::stream());
    return;
  }
  const float p = param_.dropout_param().dropout_ratio();
  const float scale = 1.0f / (1.0f - p);
  dropout_apply_cuda(out, in, n, ctx().seed, mask_stream(name(), ctx().iter, ctx().batch_in_iter), p, scale,
                     cuda::stream());
}

void DropoutLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  apply_cuda(bottom[0]->cdata(), bottom[0]->count(), top[0]->mutable_data());
}

void DropoutLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  if (!propagate_down[0]) return;
  apply_cuda(top[0]->cdiff(), top[0]->count(), bottom[0]->mutable_diff());
}
#else
COCO_CUDA_STUBS(DropoutLayer)
#endif

}  // namespace coco
