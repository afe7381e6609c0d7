#include "layers/normalize_layer.h"

#include <cmath>

#include "engine/common.h"
#include "engine/norm.h"
#if COCO_WITH_CUDA
#include "layers/normalize_cuda.h"
#endif

namespace coco {

namespace {
}

void NormalizeLayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) {
  coeff_ = param_.normalize_param().coeff();
  if (!(coeff_ != 0) || !std::isfinite(coeff_))
    COCO_THROW(where(), "normalize_param.coeff must be a finite non-zero number, got ", coeff_);
}

void NormalizeLayer::reshape(const Blobs& bottom, const Blobs& top) {
  if (bottom[0]->num_axes() < 2 || bottom[0]->shape(0) < 1 || bottom[0]->count(1) < 1)
    COCO_THROW(where(), "bottom must be (N, D...) with N, D >= 1, got ", shape_str(bottom[0]->shape()));
  if (top[0] != bottom[0]) top[0]->reshape_like(*bottom[0]);
  norms_.resize(static_cast<size_t>(bottom[0]->shape(0)));
#if COCO_WITH_CUDA
  norms_dev_.set_device(bottom[0]->device());
  norms_dev_.reshape({bottom[0]->device() == Device::kCUDA ? 2 * bottom[0]->shape(0) : 0});
#endif
}

// top (N, D) = coeff * x / n per row. In place is fine: a row's norm is taken
// before the row is written.
void NormalizeLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  const int64_t n = bottom[0]->shape(0), d = bottom[0]->count(1);
  const float* x = bottom[0]->cdata();  // (N, D)
  float* y = top[0]->mutable_data();    // (N, D)
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * d;
    double ss = 0;
    for (int64_t k = 0; k < d; ++k) ss += static_cast<double>(xi[k]) * xi[k];
    const double norm = std::sqrt(ss + kNormEpsilon);
    norms_[i] = norm;
    const float s = static_cast<float>(coeff_ / norm);
    float* yi = y + i * d;
    for (int64_t k = 0; k < d; ++k) yi[k] = s * xi[k];
  }
}

// bottom diff (=) = coeff / n * (g - x̂ (x̂ . g)), x̂ = top / coeff.
void NormalizeLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                                  const Blobs& bottom) {
  if (!propagate_down[0]) return;
  const int64_t n = bottom[0]->shape(0), d = bottom[0]->count(1);
  const float* y = top[0]->cdata();       // (N, D)
  const float* g = top[0]->cdiff();       // (N, D)
  float* dx = bottom[0]->mutable_diff();  // (N, D), may alias g in place
  const double inv_coeff = 1.0 / coeff_;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* yi = y + i * d;
    const float* gi = g + i * d;
    double dot = 0;  // x̂ . g
    for (int64_t k = 0; k < d; ++k) dot += yi[k] * inv_coeff * gi[k];
    const double s = coeff_ / norms_[i];
    float* dxi = dx + i * d;
    for (int64_t k = 0; k < d; ++k)
      dxi[k] = static_cast<float>(s * (gi[k] - yi[k] * inv_coeff * dot));
  }
}

#if COCO_WITH_CUDA
// Device memory is at least 256-byte aligned, so the float tensor holds doubles.
void NormalizeLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  normalize_forward_cuda(top[0]->mutable_data(), reinterpret_cast<double*>(norms_dev_.data()), bottom[0]->cdata(),
                         bottom[0]->shape(0), bottom[0]->count(1), coeff_, cuda::stream());
}

void NormalizeLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down,
                                   const Blobs& bottom) {
  if (!propagate_down[0]) return;
  normalize_backward_cuda(bottom[0]->mutable_diff(), top[0]->cdata(), top[0]->cdiff(),
                          reinterpret_cast<const double*>(norms_dev_.data()), bottom[0]->shape(0),
                          bottom[0]->count(1), coeff_, cuda::stream());
}
#else
COCO_CUDA_STUBS(NormalizeLayer)
#endif

}  // namespace coco
