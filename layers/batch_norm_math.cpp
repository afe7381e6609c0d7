#include "layers/batch_norm_math.h"

#include <cmath>

#if COCO_WITH_CUDA
#include "layers/batch_norm_cuda.h"
#endif

namespace coco {

BnDims bn_dims(const Shape& shape) {
  BnDims d;
  d.N = shape.empty() ? 1 : shape[0];
  d.C = shape.size() < 2 ? 1 : shape[1];
  d.S = shape_count(shape, 2);
  return d;
}

void bn_batch_stats(const float* x, int64_t N, int64_t C, int64_t S, float* mean, float* var) {
  const double m = static_cast<double>(N) * S;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < N; ++n) {
      const float* p = x + (n * C + c) * S;
      for (int64_t s = 0; s < S; ++s) sum += p[s];
    }
    const double mu = sum / m;
    double sq = 0;  // two passes: no cancellation in E[x^2] - E[x]^2
    for (int64_t n = 0; n < N; ++n) {
      const float* p = x + (n * C + c) * S;
      for (int64_t s = 0; s < S; ++s) {
        const double d = p[s] - mu;
        sq += d * d;
      }
    }
    mean[c] = static_cast<float>(mu);
    var[c] = static_cast<float>(sq / m);
  }
}

void bn_inv_std(const float* var, int64_t C, float eps, float* inv_std) {
  for (int64_t c = 0; c < C; ++c) inv_std[c] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var[c]) + eps));
}

void bn_normalize(const float* x, const float* mean, const float* inv_std, int64_t N, int64_t C,
                  int64_t S, float* x_hat) {
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < N * C; ++nc) {
    const int64_t c = nc % C;
    const float mu = mean[c], is = inv_std[c];
    const float* p = x + nc * S;
    float* q = x_hat + nc * S;
    for (int64_t s = 0; s < S; ++s) q[s] = (p[s] - mu) * is;
  }
}

void bn_grad_sums(const float* dy, const float* x_hat, int64_t N, int64_t C, int64_t S,
                  float* sum_dy, float* sum_dy_xhat) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    double a = 0, b = 0;
    for (int64_t n = 0; n < N; ++n) {
      const float* g = dy + (n * C + c) * S;
      const float* h = x_hat + (n * C + c) * S;
      for (int64_t s = 0; s < S; ++s) {
        a += g[s];
        b += static_cast<double>(g[s]) * h[s];
      }
    }
    sum_dy[c] = static_cast<float>(a);
    sum_dy_xhat[c] = static_cast<float>(b);
  }
}

void bn_backward_input(BnStats stats, const float* dy, const float* x_hat, const float* inv_std,
                       const float* gamma, const float* sum_dy, const float* sum_dy_xhat,
                       int64_t N, int64_t C, int64_t S, float* dx) {
  const float inv_m = static_cast<float>(1.0 / (static_cast<double>(N) * S));
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < N * C; ++nc) {
    const int64_t c = nc % C;
    const float k = (gamma ? gamma[c] : 1.0f) * inv_std[c];
    const float* g = dy + nc * S;
    float* d = dx + nc * S;
    if (stats == BnStats::kGlobal) {
      for (int64_t s = 0; s < S; ++s) d[s] = k * g[s];
    } else {
      const float mean_dy = sum_dy[c] * inv_m, mean_dy_xhat = sum_dy_xhat[c] * inv_m;
      const float* h = x_hat + nc * S;
      for (int64_t s = 0; s < S; ++s) d[s] = k * (g[s] - mean_dy - h[s] * mean_dy_xhat);
    }
  }
}

void BatchNormCore::set_device(Device dev) {
  for (Tensor* t : {&mean_, &var_, &inv_std_, &x_hat_, &sum_dy_, &sum_dy_xhat_}) t->set_device(dev);
}

void BatchNormCore::reshape(const Shape& bottom_shape) {
  d_ = bn_dims(bottom_shape);
  x_hat_.reshape(bottom_shape);
  for (Tensor* t : {&mean_, &var_, &inv_std_, &sum_dy_, &sum_dy_xhat_}) t->reshape({d_.C});
}

void BatchNormCore::normalize(const float* x, BnStats used, float eps) {
  used_ = used;
  bn_inv_std(var(), d_.C, eps, inv_std_.data());
  bn_normalize(x, mean(), inv_std_.data(), d_.N, d_.C, d_.S, x_hat_.data());
}

void BatchNormCore::grad_sums(const float* dy) {
  bn_grad_sums(dy, x_hat_.data(), d_.N, d_.C, d_.S, sum_dy_.data(), sum_dy_xhat_.data());
}

void BatchNormCore::backward_input(const float* dy, const float* gamma, float* dx) const {
  bn_backward_input(used_, dy, x_hat_.data(), inv_std_.data(), gamma, sum_dy_.data(), sum_dy_xhat_.data(), d_.N,
                    d_.C, d_.S, dx);
}

#if COCO_WITH_CUDA
void BatchNormCore::batch_stats_cuda(const float* x, cuda::Stream stream) {
  bn_batch_stats_cuda(mean(), var(), x, d_.N, d_.C, d_.S, stream);
}

void BatchNormCore::normalize_cuda(const float* x, BnStats used, float eps, float* y, cuda::Stream stream) {
  used_ = used;
  bn_normalize_cuda(inv_std_.data(), x_hat_.data(), y, x, mean(), var(), eps, d_.N, d_.C, d_.S, stream);
}

void BatchNormCore::normalize_affine_cuda(const float* x, BnStats used, float eps, const float* scale,
                                          const float* shift, float* y, cuda::Stream stream) {
  used_ = used;
  bn_normalize_affine_cuda(inv_std_.data(), x_hat_.data(), y, x, mean(), var(), scale, shift, eps, d_.N, d_.C, d_.S,
                           stream);
}

void BatchNormCore::grad_sums_cuda(const float* dy, cuda::Stream stream) {
  bn_grad_sums_cuda(sum_dy_.data(), sum_dy_xhat_.data(), dy, x_hat_.data(), d_.N, d_.C, d_.S, stream);
}

void BatchNormCore::backward_input_cuda(const float* dy, const float* gamma, float* dx, cuda::Stream stream) const {
  bn_backward_input_cuda(dx, dy, x_hat_.data(), inv_std_.data(), gamma, sum_dy_.data(), sum_dy_xhat_.data(),
                         used_ == BnStats::kBatch, d_.N, d_.C, d_.S, stream);
}
#endif

}  // namespace coco
