#include "layers/pooling_layer.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "engine/common.h"

namespace coco {

void PoolingLayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) {
  const auto& p = param_.pooling_param();
  const std::string w = where();
  switch (p.pool()) {
    case proto::PoolingParameter::MAX: method_ = Method::kMax; break;
    case proto::PoolingParameter::AVE: method_ = Method::kAve; break;
    default: COCO_THROW(w, "pool: STOCHASTIC is not supported (use MAX or AVE)");
  }
  rounding_ = p.round_mode() == proto::PoolingParameter::FLOOR ? Rounding::kFloor : Rounding::kCeil;
  global_ = p.global_pooling();
  const bool has_k = p.has_kernel_size(), has_kh = p.has_kernel_h(), has_kw = p.has_kernel_w();
  if (global_) {
    if (has_k || has_kh || has_kw) COCO_THROW(w, "global_pooling takes the whole plane; do not give a kernel size");
  } else {
    if (has_k && (has_kh || has_kw)) COCO_THROW(w, "give kernel_size or kernel_h and kernel_w, not both");
    if (!has_k && !(has_kh && has_kw))
      COCO_THROW(w, "kernel_size (or both kernel_h and kernel_w) is required");
    kh_ = has_k ? p.kernel_size() : p.kernel_h();
    kw_ = has_k ? p.kernel_size() : p.kernel_w();
    if (kh_ <= 0 || kw_ <= 0) COCO_THROW(w, "kernel size must be positive, got ", kh_, "x", kw_);
  }
  if (p.has_pad() && (p.has_pad_h() || p.has_pad_w())) COCO_THROW(w, "give pad or pad_h and pad_w, not both");
  if (p.has_pad_h() != p.has_pad_w()) COCO_THROW(w, "pad_h and pad_w must be given together");
  if (p.has_stride() && (p.has_stride_h() || p.has_stride_w()))
    COCO_THROW(w, "give stride or stride_h and stride_w, not both");
  if (p.has_stride_h() != p.has_stride_w()) COCO_THROW(w, "stride_h and stride_w must be given together");
  ph_ = p.has_pad_h() ? p.pad_h() : p.pad();
  pw_ = p.has_pad_w() ? p.pad_w() : p.pad();
  sh_ = p.has_stride_h() ? p.stride_h() : p.stride();
  sw_ = p.has_stride_w() ? p.stride_w() : p.stride();
  if (sh_ <= 0 || sw_ <= 0) COCO_THROW(w, "stride must be positive, got ", sh_, "x", sw_);
  if (global_ && (ph_ != 0 || pw_ != 0 || sh_ != 1 || sw_ != 1))
    COCO_THROW(w, "global_pooling takes pad 0 and stride 1");
  if (!global_ && (ph_ >= kh_ || pw_ >= kw_))
    COCO_THROW(w, "pad (", ph_, "x", pw_, ") must be smaller than the kernel (", kh_, "x", kw_, ")");
}

void PoolingLayer::reshape(const Blobs& bottom, const Blobs& top) {
  const Blob& x = *bottom[0];
  if (x.num_axes() != 4) COCO_THROW(where(), "bottom must be 4-D (N, C, H, W), got ", shape_str(x.shape()));
  if (top[0] == bottom[0]) COCO_THROW(where(), "cannot run in place");
  num_ = x.shape(0), channels_ = x.shape(1), height_ = x.shape(2), width_ = x.shape(3);
  if (global_) kh_ = height_, kw_ = width_;
  if (height_ + 2 * ph_ < kh_ || width_ + 2 * pw_ < kw_)
    COCO_THROW(where(), "the kernel ", kh_, "x", kw_, " is larger than the padded input ", height_ + 2 * ph_, "x",
               width_ + 2 * pw_);
  auto out_size = [&](int64_t size, int64_t k, int64_t s, int64_t pad) {
    const int64_t span = size + 2 * pad - k;  // >= 0
    int64_t out = (rounding_ == Rounding::kCeil ? (span + s - 1) / s : span / s) + 1;
    // Caffe: the last window must start inside the image (not in the padding).
    if (pad > 0 && (out - 1) * s >= size + pad) --out;
    return out;
  };
  out_h_ = out_size(height_, kh_, sh_, ph_);
  out_w_ = out_size(width_, kw_, sw_, pw_);
  top[0]->reshape({num_, channels_, out_h_, out_w_});
  if (method_ == Method::kMax) {
    if (x.device() == Device::kCPU) {
      const size_t need = static_cast<size_t>(top[0]->count());
      if (argmax_.size() < need) argmax_.resize(need);
    } else {
#if COCO_WITH_CUDA
      static_assert(sizeof(float) == sizeof(int32_t), "argmax_cuda_ stores int32 in float storage");
      argmax_cuda_.set_device(x.device());
      argmax_cuda_.reshape({top[0]->count()});
#endif
    }
  }
}

PoolGeometry PoolingLayer::geometry() const {
  PoolGeometry g;
  g.n = num_, g.c = channels_, g.h = height_, g.w = width_, g.out_h = out_h_, g.out_w = out_w_;
  g.kh = kh_, g.kw = kw_, g.sh = sh_, g.sw = sw_, g.ph = ph_, g.pw = pw_;
  return g;
}

// Each (n, c) plane is independent: one thread per plane.
void PoolingLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  const float* x = bottom[0]->cdata();
  float* y = top[0]->mutable_data();
  const int64_t H = height_, W = width_, Ho = out_h_, Wo = out_w_, planes = num_ * channels_;
  int32_t* arg = argmax_.data();
  const bool is_max = method_ == Method::kMax;
#pragma omp parallel for schedule(static)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const float* xp = x + pl * H * W;
    float* yp = y + pl * Ho * Wo;
    for (int64_t oh = 0; oh < Ho; ++oh) {
      for (int64_t ow = 0; ow < Wo; ++ow) {
        int64_t h0 = oh * sh_ - ph_, w0 = ow * sw_ - pw_;
        if (is_max) {
          const int64_t h1 = std::min(h0 + kh_, H), w1 = std::min(w0 + kw_, W);
          h0 = std::max<int64_t>(h0, 0), w0 = std::max<int64_t>(w0, 0);
          float best = -FLT_MAX;
          int32_t best_i = -1;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w)
              if (xp[h * W + w] > best) best = xp[h * W + w], best_i = static_cast<int32_t>(h * W + w);
          yp[oh * Wo + ow] = best;
          arg[pl * Ho * Wo + oh * Wo + ow] = best_i;
        } else {
          int64_t h1 = std::min(h0 + kh_, H + ph_), w1 = std::min(w0 + kw_, W + pw_);
          const int64_t pool_size = (h1 - h0) * (w1 - w0);  // clipped to the padded image
          h0 = std::max<int64_t>(h0, 0), w0 = std::max<int64_t>(w0, 0);
          h1 = std::min(h1, H), w1 = std::min(w1, W);
          float s = 0.f;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) s += xp[h * W + w];
          yp[oh * Wo + ow] = s / static_cast<float>(pool_size);
        }
      }
    }
  }
}

// bottom diff (=): MAX sends each top gradient to its argmax; AVE spreads it evenly.
void PoolingLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  if (!propagate_down[0]) return;
  const float* dy = top[0]->cdiff();
  float* dx = bottom[0]->mutable_diff();
  const int64_t H = height_, W = width_, Ho = out_h_, Wo = out_w_, planes = num_ * channels_;
  const int32_t* arg = argmax_.data();
  const bool is_max = method_ == Method::kMax;
#pragma omp parallel for schedule(static)
  for (int64_t pl = 0; pl < planes; ++pl) {
    float* dxp = dx + pl * H * W;
    const float* dyp = dy + pl * Ho * Wo;
    std::memset(dxp, 0, sizeof(float) * H * W);
    if (is_max) {
      const int32_t* ap = arg + pl * Ho * Wo;
      for (int64_t i = 0; i < Ho * Wo; ++i)
        if (ap[i] >= 0) dxp[ap[i]] += dyp[i];
      continue;
    }
    for (int64_t oh = 0; oh < Ho; ++oh) {
      for (int64_t ow = 0; ow < Wo; ++ow) {
        int64_t h0 = oh * sh_ - ph_, w0 = ow * sw_ - pw_;
        int64_t h1 = std::min(h0 + kh_, H + ph_), w1 = std::min(w0 + kw_, W + pw_);
        const float g = dyp[oh * Wo + ow] / static_cast<float>((h1 - h0) * (w1 - w0));
        h0 = std::max<int64_t>(h0, 0), w0 = std::max<int64_t>(w0, 0);
        h1 = std::min(h1, H), w1 = std::min(w1, W);
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) dxp[h * W + w] += g;
      }
    }
  }
}

#if COCO_WITH_CUDA
bool PoolingLayer::use_cudnn_ave(const PoolGeometry& g) const {
  return method_ == Method::kAve && !cuda::deterministic() && CudnnAvePooling::expresses(g);
}

void PoolingLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  const PoolGeometry g = geometry();
  const float* x = bottom[0]->cdata();
  float* y = top[0]->mutable_data();
  const cuda::Stream s = cuda::stream();
  if (method_ == Method::kMax) {
    max_pool_forward_cuda(y, reinterpret_cast<int32_t*>(argmax_cuda_.data()), x, g, s);
  } else if (use_cudnn_ave(g)) {
    if (!cudnn_ave_) cudnn_ave_ = std::make_unique<CudnnAvePooling>();
    cudnn_ave_->set_geometry(g);
    cudnn_ave_->forward(y, x, s);
  } else {
    ave_pool_forward_cuda(y, x, g, s);
  }
}

void PoolingLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  if (!propagate_down[0]) return;
  const PoolGeometry g = geometry();
  const float* dy = top[0]->cdiff();
  float* dx = bottom[0]->mutable_diff();
  const cuda::Stream s = cuda::stream();
  if (method_ == Method::kMax) {
    max_pool_backward_cuda(dx, dy, reinterpret_cast<const int32_t*>(argmax_cuda_.data()), g, s);
  } else if (use_cudnn_ave(g)) {
    if (!cudnn_ave_) cudnn_ave_ = std::make_unique<CudnnAvePooling>();
    cudnn_ave_->set_geometry(g);
    cudnn_ave_->backward(dx, dy, top[0]->cdata(), bottom[0]->cdata(), s);
  } else {
    ave_pool_backward_cuda(dx, dy, g, s);
  }
}
#else
COCO_CUDA_STUBS(PoolingLayer)
#endif

}  // namespace coco
