#include "layers/convolution_layer.h"

#include <algorithm>
#include <cstring>

#include <cblas.h>
#include <omp.h>

#include "engine/common.h"
#include "engine/filler.h"
#include "engine/math.h"

namespace coco {

namespace {

// One spatial parameter given Caffe's way: the _h/_w pair, or a repeated field with
// 0 (default), 1 (both axes) or 2 (h, w) values.
struct Pair {
  int64_t h, w;
};

Pair spatial(const std::string& where, const char* name, const char* rep_name, bool has_h, uint32_t h,
             bool has_w, uint32_t w, const google::protobuf::RepeatedField<uint32_t>& rep, int64_t dflt) {
  if (has_h || has_w) {
    if (!(has_h && has_w)) COCO_THROW(where, name, "_h and ", name, "_w must be given together");
    if (rep.size() != 0) COCO_THROW(where, "give either ", rep_name, " or ", name, "_h/", name, "_w, not both");
    return {h, w};
  }
  if (rep.size() == 0) return {dflt, dflt};
  if (rep.size() == 1) return {rep.Get(0), rep.Get(0)};
  if (rep.size() == 2) return {rep.Get(0), rep.Get(1)};
  COCO_THROW(where, rep_name, " has ", rep.size(), " values; a 2-D convolution takes 1 or 2");
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The output columns ow in [lo, hi) whose input column ow*stride + off lies in [0, size).
void valid_range(int64_t off, int64_t stride, int64_t size, int64_t out, int64_t* lo, int64_t* hi) {
  *lo = off >= 0 ? 0 : ceil_div(-off, stride);
  *hi = size - off > 0 ? std::min(out, (size - off - 1) / stride + 1) : 0;
  *lo = std::min(*lo, *hi);
}

}  // namespace

void ConvolutionLayer::set_col_buffer_limit(int64_t bytes) {
  COCO_CHECK(bytes > 0, "column buffer limit must be positive, got ", bytes);
  col_limit_bytes_ = bytes;
}

void ConvolutionLayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) {
  const auto& p = param_.convolution_param();
  const std::string w = where();
  if (p.axis() != 1 && p.axis() != -3)
    COCO_THROW(w, "only axis 1 (NCHW) is supported, got axis ", p.axis());
  if (bottom[0]->num_axes() != 4)
    COCO_THROW(w, "bottom must be 4-D (N, C, H, W), got ", shape_str(bottom[0]->shape()));
  if (!p.has_num_output() || p.num_output() == 0) COCO_THROW(w, "num_output must be set and positive");
  num_output_ = p.num_output();
  group_ = p.group();
  has_bias_ = p.bias_term();

  if (!p.has_kernel_h() && !p.has_kernel_w() && p.kernel_size_size() == 0)
    COCO_THROW(w, "kernel_size (or kernel_h and kernel_w) is required");
  const Pair k = spatial(w, "kernel", "kernel_size", p.has_kernel_h(), p.kernel_h(), p.has_kernel_w(),
                         p.kernel_w(), p.kernel_size(), 0);
  const Pair s = spatial(w, "stride", "stride", p.has_stride_h(), p.stride_h(), p.has_stride_w(),
                         p.stride_w(), p.stride(), 1);
  const Pair pd = spatial(w, "pad", "pad", p.has_pad_h(), p.pad_h(), p.has_pad_w(), p.pad_w(), p.pad(), 0);
  const Pair d = spatial(w, "dilation", "dilation", false, 0, false, 0, p.dilation(), 1);
  kh_ = k.h, kw_ = k.w, sh_ = s.h, sw_ = s.w, ph_ = pd.h, pw_ = pd.w, dh_ = d.h, dw_ = d.w;
  if (kh_ <= 0 || kw_ <= 0) COCO_THROW(w, "kernel size must be positive, got ", kh_, "x", kw_);
  if (sh_ <= 0 || sw_ <= 0) COCO_THROW(w, "stride must be positive, got ", sh_, "x", sw_);
  if (dh_ <= 0 || dw_ <= 0) COCO_THROW(w, "dilation must be positive, got ", dh_, "x", dw_);

  use_dnnl_ = dnnl_available() && p.engine() != proto::CAFFE;
  channels_ = bottom[0]->shape(1);
  if (channels_ <= 0) COCO_THROW(w, "bottom ", shape_str(bottom[0]->shape()), " has no channels");
  if (group_ <= 0) COCO_THROW(w, "group must be positive");
  if (channels_ % group_ != 0)
    COCO_THROW(w, "input channels (", channels_, ") must be a multiple of group (", group_, ")");
  if (num_output_ % group_ != 0)
    COCO_THROW(w, "num_output (", num_output_, ") must be a multiple of group (", group_, ")");

  std::vector<ParamDecl> decls{{"weight", {num_output_, channels_ / group_, kh_, kw_}, &p.weight_filler()}};
  if (has_bias_) decls.push_back({"bias", {num_output_}, &p.bias_filler()});
  init_params(decls, rng);
}

void ConvolutionLayer::reshape(const Blobs& bottom, const Blobs& top) {
  const Blob& x = *bottom[0];
  if (x.num_axes() != 4) COCO_THROW(where(), "bottom must be 4-D (N, C, H, W), got ", shape_str(x.shape()));
  if (x.shape(1) != channels_)
    COCO_THROW(where(), "bottom has ", x.shape(1), " channels; the layer was set up for ", channels_);
  if (top[0] == bottom[0]) COCO_THROW(where(), "cannot run in place");
  num_ = x.shape(0), height_ = x.shape(2), width_ = x.shape(3);
  const int64_t ext_h = dh_ * (kh_ - 1) + 1, ext_w = dw_ * (kw_ - 1) + 1;
  if (height_ + 2 * ph_ < ext_h || width_ + 2 * pw_ < ext_w)
    COCO_THROW(where(), "the (dilated) kernel ", ext_h, "x", ext_w, " is larger than the padded input ",
               height_ + 2 * ph_, "x", width_ + 2 * pw_);
  out_h_ = (height_ + 2 * ph_ - ext_h) / sh_ + 1;
  out_w_ = (width_ + 2 * pw_ - ext_w) / sw_ + 1;
  top[0]->reshape({num_, num_output_, out_h_, out_w_});
#if COCO_WITH_CUDA
  if (x.device() == Device::kCUDA) cudnn_for_shape();
#endif
}

int ConvolutionLayer::prepare(bool backward) {
  const int threads = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), num_));
  const int slices = std::max(threads, 1);
  const int64_t per_slice = (num_ + slices - 1) / slices;
  const int64_t col_per_image = channels_ * kh_ * kw_ * out_h_ * out_w_;
  chunk_ = std::max<int64_t>(1, std::min<int64_t>(per_slice, col_limit_bytes_ / (4 * std::max<int64_t>(col_per_image, 1))));
  if (static_cast<int>(ws_.size()) < slices) ws_.resize(slices);
  const size_t col_need = static_cast<size_t>(col_per_image * chunk_);
  const size_t out_need = static_cast<size_t>(num_output_ * out_h_ * out_w_ * chunk_);
  for (int t = 0; t < slices; ++t) {
    Workspace& ws = ws_[t];
    if (ws.col.size() < col_need) ws.col.resize(col_need);
    if (ws.out.size() < out_need) ws.out.resize(out_need);
    if (backward && slices > 1) {
      ws.dweight.assign(blobs_[0]->count(), 0.f);
      ws.dbias.assign(has_bias_ ? num_output_ : 0, 0.f);
    }
  }
  return slices;
}

// Row r = (c*kh + i)*kw + j of col holds, for every image and output pixel (oh, ow),
// x[c, oh*sh - ph + i*dh, ow*sw - pw + j*dw] (0 outside the image).
void ConvolutionLayer::im2col(const float* x, int64_t n_img, float* col) const {
  const int64_t C = channels_, H = height_, W = width_, Ho = out_h_, Wo = out_w_;
  const int64_t hwo = Ho * Wo, ld = n_img * hwo;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < n_img; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      const float* plane = x + (n * C + c) * H * W;
      for (int64_t i = 0; i < kh_; ++i) {
        for (int64_t j = 0; j < kw_; ++j) {
          float* dst = col + ((c * kh_ + i) * kw_ + j) * ld + n * hwo;
          const int64_t h_off = i * dh_ - ph_, w_off = j * dw_ - pw_;
          int64_t lo, hi;
          valid_range(w_off, sw_, W, Wo, &lo, &hi);
          for (int64_t oh = 0; oh < Ho; ++oh) {
            float* row = dst + oh * Wo;
            const int64_t h = oh * sh_ + h_off;
            if (h < 0 || h >= H) {
              std::memset(row, 0, sizeof(float) * Wo);
              continue;
            }
            for (int64_t ow = 0; ow < lo; ++ow) row[ow] = 0.f;
            const float* src = plane + h * W + w_off;
            if (sw_ == 1) {
              std::memcpy(row + lo, src + lo, sizeof(float) * (hi - lo));
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) row[ow] = src[ow * sw_];
            }
            for (int64_t ow = hi; ow < Wo; ++ow) row[ow] = 0.f;
          }
        }
      }
    }
  }
}

// The adjoint of im2col: each (image, channel) plane is zeroed and then summed into
// by one thread, in a fixed order, so the result is deterministic.
void ConvolutionLayer::col2im(const float* col, int64_t n_img, float* dx) const {
  const int64_t C = channels_, H = height_, W = width_, Ho = out_h_, Wo = out_w_;
  const int64_t hwo = Ho * Wo, ld = n_img * hwo;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < n_img; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      float* plane = dx + (n * C + c) * H * W;
      std::memset(plane, 0, sizeof(float) * H * W);
      for (int64_t i = 0; i < kh_; ++i) {
        for (int64_t j = 0; j < kw_; ++j) {
          const float* src = col + ((c * kh_ + i) * kw_ + j) * ld + n * hwo;
          const int64_t h_off = i * dh_ - ph_, w_off = j * dw_ - pw_;
          int64_t lo, hi;
          valid_range(w_off, sw_, W, Wo, &lo, &hi);
          for (int64_t oh = 0; oh < Ho; ++oh) {
            const int64_t h = oh * sh_ + h_off;
            if (h < 0 || h >= H) continue;
            const float* row = src + oh * Wo;
            float* dst = plane + h * W + w_off;
            if (sw_ == 1) {
              for (int64_t ow = lo; ow < hi; ++ow) dst[ow] += row[ow];
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) dst[ow * sw_] += row[ow];
            }
          }
        }
      }
    }
  }
}

namespace {

// Sets OpenBLAS's thread count for a scope (the batch-parallel paths run one BLAS
// thread per OpenMP thread).
class BlasThreadsScope {
 public:
  explicit BlasThreadsScope(int n) : saved_(openblas_get_num_threads()) {
    if (n != saved_) openblas_set_num_threads(n);
  }
  ~BlasThreadsScope() {
    if (openblas_get_num_threads() != saved_) openblas_set_num_threads(saved_);
  }
  BlasThreadsScope(const BlasThreadsScope&) = delete;
  BlasThreadsScope& operator=(const BlasThreadsScope&) = delete;

 private:
  int saved_;
};

}  // namespace

// top (N, C_out, Ho, Wo) = W * im2col(x) + bias.
ConvGeometry ConvolutionLayer::geometry() const {
  ConvGeometry g;
  g.n = num_, g.c = channels_, g.h = height_, g.w = width_, g.oc = num_output_, g.oh = out_h_, g.ow = out_w_;
  g.kh = kh_, g.kw = kw_, g.sh = sh_, g.sw = sw_, g.ph = ph_, g.pw = pw_, g.dh = dh_, g.dw = dw_, g.group = group_;
  g.bias = has_bias_;
  return g;
}

DnnlConvolution& ConvolutionLayer::dnnl_for_shape() {
  const ConvGeometry g = geometry();
  if (!dnnl_ || !(dnnl_->geometry() == g)) {
    try {
      dnnl_ = std::make_unique<DnnlConvolution>(g);
    } catch (const std::exception& e) {  // dnnl::error: a geometry oneDNN rejects
      COCO_THROW(where(), "oneDNN cannot set up this convolution: ", e.what());
    }
  }
  return *dnnl_;
}

void ConvolutionLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  if (ctx().precision != Precision::kFP32) {
    forward_reduced(bottom[0]->cdata(), top[0]->mutable_data());
    return;
  }
  forward_fp32(bottom[0]->cdata(), blobs_[0]->cdata(), has_bias_ ? blobs_[1]->cdata() : nullptr,
               top[0]->mutable_data());
}

void ConvolutionLayer::forward_fp32(const float* x, const float* w, const float* b, float* y) {
  if (use_dnnl_) {
    if (has_bias_ && !b) zeros_.assign(static_cast<size_t>(num_output_), 0.f);  // oneDNN's bias slot is fixed
    dnnl_for_shape().forward(x, w, has_bias_ ? (b ? b : zeros_.data()) : nullptr, y);
    return;
  }
  const int slices = prepare(false);
  if (slices == 1) {
    forward_range(x, w, b, y, 0, num_, ws_[0]);
    return;
  }
  BlasThreadsScope one(1);
#pragma omp parallel num_threads(slices)
  {
    const int t = omp_get_thread_num();
    forward_range(x, w, b, y, num_ * t / slices, num_ * (t + 1) / slices, ws_[t]);
  }
}

namespace {
// v = in rounded to p, resized to n.
void rounded_copy(Precision p, const float* in, int64_t n, std::vector<float>* v) {
  v->resize(static_cast<size_t>(n));
  round_to(p, in, v->data(), n);
}
}  // namespace

// cuDNN on 16-bit tensors reads x and w in the format, sums in fp32 and writes y
// in the format; coco's kernel then adds the fp32 bias (layers/convolution_cuda.h).
void ConvolutionLayer::forward_reduced(const float* x, float* y) {
  const Precision p = ctx().precision;
  rounded_copy(p, x, num_ * channels_ * height_ * width_, &x_round_);
  rounded_copy(p, blobs_[0]->cdata(), blobs_[0]->count(), &w_round_);
  forward_fp32(x_round_.data(), w_round_.data(), nullptr, y);
  const int64_t hwo = out_h_ * out_w_;
  round_to(p, y, y, num_ * num_output_ * hwo);
  if (!has_bias_) return;
  const float* b = blobs_[1]->cdata();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < num_; ++n)
    for (int64_t c = 0; c < num_output_; ++c)
      for (int64_t k = 0; k < hwo; ++k) y[(n * num_output_ + c) * hwo + k] += b[c];
}

void ConvolutionLayer::forward_range(const float* x, const float* weight, const float* bias, float* y, int64_t begin,
                                     int64_t end, Workspace& ws) const {
  const int64_t C = channels_, HW = height_ * width_, hwo = out_h_ * out_w_;
  const int64_t Co = num_output_, Co_g = Co / group_, K_g = C / group_ * kh_ * kw_;
  float* col = ws.col.data();
  for (int64_t n0 = begin; n0 < end; n0 += chunk_) {
    const int64_t n_img = std::min(chunk_, end - n0), ld = n_img * hwo;
    float* y0 = y + n0 * Co * hwo;
    // One image: its (Co, hwo) block of y is the GEMM result itself, no scatter.
    float* out = n_img == 1 ? y0 : ws.out.data();
    im2col(x + n0 * C * HW, n_img, col);
    for (int64_t g = 0; g < group_; ++g)
      cpu_gemm(Trans::kNo, Trans::kNo, Co_g, ld, K_g, 1.f, weight + g * Co_g * K_g, col + g * K_g * ld, 0.f,
               out + g * Co_g * ld);
    if (n_img == 1) {
      if (bias)
        for (int64_t c = 0; c < Co; ++c)
          for (int64_t k = 0; k < hwo; ++k) y0[c * hwo + k] += bias[c];
      continue;
    }
    // out (Co, n_img*hwo) -> y[n0 + n] (Co, hwo), plus bias.
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < n_img; ++n) {
      for (int64_t c = 0; c < Co; ++c) {
        const float* src = out + c * ld + n * hwo;
        float* dst = y0 + (n * Co + c) * hwo;
        const float b = bias ? bias[c] : 0.f;
        for (int64_t k = 0; k < hwo; ++k) dst[k] = src[k] + b;
      }
    }
  }
}

// weight diff += dY * col^T, bias diff += row sums of dY, bottom diff = col2im(W^T * dY).
void ConvolutionLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                                    const Blobs& bottom) {
  float* dx = propagate_down[0] ? bottom[0]->mutable_diff() : nullptr;
  if (ctx().precision != Precision::kFP32) {
    backward_reduced(top[0]->cdiff(), dx);
    return;
  }
  backward_fp32(bottom[0]->cdata(), top[0]->cdiff(), blobs_[0]->cdata(), blobs_[0]->mutable_diff(),
                has_bias_ ? blobs_[1]->mutable_diff() : nullptr, dx);
}

void ConvolutionLayer::backward_fp32(const float* x, const float* dy, const float* w, float* dweight, float* dbias,
                                     float* dx) {
  if (use_dnnl_) {
    if (has_bias_ && !dbias) zeros_.assign(static_cast<size_t>(num_output_), 0.f);  // a slot to discard
    dnnl_for_shape().backward(dy, w, dweight, has_bias_ ? (dbias ? dbias : zeros_.data()) : nullptr, dx);
    return;
  }
  const int slices = prepare(true);
  if (slices == 1) {
    backward_range(x, dy, w, dx, dweight, dbias, 0, num_, ws_[0]);
    return;
  }
  {
    BlasThreadsScope one(1);
#pragma omp parallel num_threads(slices)
    {
      const int t = omp_get_thread_num();
      Workspace& ws = ws_[t];
      backward_range(x, dy, w, dx, ws.dweight.data(), dbias ? ws.dbias.data() : nullptr, num_ * t / slices,
                     num_ * (t + 1) / slices, ws);
    }
  }
  // Reduce the per-thread gradients in thread order (deterministic).
  const int64_t nw = blobs_[0]->count();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < nw; ++i) {
    float s = 0.f;
    for (int t = 0; t < slices; ++t) s += ws_[t].dweight[i];
    dweight[i] += s;
  }
  if (dbias)
    for (int64_t c = 0; c < num_output_; ++c) {
      float s = 0.f;
      for (int t = 0; t < slices; ++t) s += ws_[t].dbias[c];
      dbias[c] += s;
    }
}

// As cuDNN on 16-bit tensors: dy and w (and the forward's x) in the format, dx and
// the weight gradient written in it before the fp32 accumulation into the diff;
// the bias gradient is coco's fp32 sum of the unrounded dy.
void ConvolutionLayer::backward_reduced(const float* dy, float* dx) {
  const Precision p = ctx().precision;
  const int64_t hwo = out_h_ * out_w_, nw = blobs_[0]->count();
  COCO_CHECK(static_cast<int64_t>(x_round_.size()) == num_ * channels_ * height_ * width_, where(),
             "backward without a forward at this precision");
  rounded_copy(p, dy, num_ * num_output_ * hwo, &dy_round_);
  rounded_copy(p, blobs_[0]->cdata(), nw, &w_round_);
  dw_round_.assign(static_cast<size_t>(nw), 0.f);
  backward_fp32(x_round_.data(), dy_round_.data(), w_round_.data(), dw_round_.data(), nullptr, dx);
  if (dx) round_to(p, dx, dx, num_ * channels_ * height_ * width_);
  round_to(p, dw_round_.data(), dw_round_.data(), nw);
  float* dweight = blobs_[0]->mutable_diff();
  for (int64_t i = 0; i < nw; ++i) dweight[i] += dw_round_[i];
  if (!has_bias_) return;
  float* dbias = blobs_[1]->mutable_diff();
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < num_output_; ++c) {
    double s = 0;
    for (int64_t n = 0; n < num_; ++n)
      for (int64_t k = 0; k < hwo; ++k) s += dy[(n * num_output_ + c) * hwo + k];
    dbias[c] += static_cast<float>(s);
  }
}

void ConvolutionLayer::backward_range(const float* x, const float* dy, const float* weight, float* dx, float* dweight,
                                      float* dbias, int64_t begin, int64_t end, Workspace& ws) const {
  const int64_t C = channels_, HW = height_ * width_, hwo = out_h_ * out_w_;
  const int64_t Co = num_output_, Co_g = Co / group_, K_g = C / group_ * kh_ * kw_;
  float* col = ws.col.data();
  for (int64_t n0 = begin; n0 < end; n0 += chunk_) {
    const int64_t n_img = std::min(chunk_, end - n0), ld = n_img * hwo;
    // dy[n0 + n] (Co, hwo) -> gy (Co, n_img*hwo); one image is already in that layout.
    const float* dy0 = dy + n0 * Co * hwo;
    const float* gy = dy0;
    if (n_img > 1) {
      float* buf = ws.out.data();
#pragma omp parallel for collapse(2) schedule(static)
      for (int64_t n = 0; n < n_img; ++n) {
        for (int64_t c = 0; c < Co; ++c) {
          std::memcpy(buf + c * ld + n * hwo, dy0 + (n * Co + c) * hwo, sizeof(float) * hwo);
        }
      }
      gy = buf;
    }
    if (dbias) {
#pragma omp parallel for schedule(static)
      for (int64_t c = 0; c < Co; ++c) {
        const float* row = gy + c * ld;
        double s = 0;
        for (int64_t k = 0; k < ld; ++k) s += row[k];
        dbias[c] += static_cast<float>(s);
      }
    }
    im2col(x + n0 * C * HW, n_img, col);
    for (int64_t g = 0; g < group_; ++g)
      cpu_gemm(Trans::kNo, Trans::kYes, Co_g, K_g, ld, 1.f, gy + g * Co_g * ld, col + g * K_g * ld, 1.f,
               dweight + g * Co_g * K_g);
    if (!dx) continue;
    for (int64_t g = 0; g < group_; ++g)
      cpu_gemm(Trans::kYes, Trans::kNo, K_g, ld, Co_g, 1.f, weight + g * Co_g * K_g, gy + g * Co_g * ld, 0.f,
               col + g * K_g * ld);
    col2im(col, n_img, dx + n0 * C * HW);
  }
}

#if COCO_WITH_CUDA
CudnnConvolution& ConvolutionLayer::cudnn_for_shape() {
  if (!cudnn_) cudnn_ = std::make_unique<CudnnConvolution>();
  cudnn_->set_geometry(geometry(), ctx().precision);  // cheap when nothing changed
  return *cudnn_;
}

void ConvolutionLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  cudnn_for_shape().forward(top[0]->mutable_data(), bottom[0]->cdata(), blobs_[0]->cdata(),
                            has_bias_ ? blobs_[1]->cdata() : nullptr, cuda::stream());
}

// weight diff +=, bias diff +=, bottom diff = (as backward_cpu).
void ConvolutionLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down,
                                     const Blobs& bottom) {
  cudnn_for_shape().backward(blobs_[0]->mutable_diff(), has_bias_ ? blobs_[1]->mutable_diff() : nullptr,
                             propagate_down[0] ? bottom[0]->mutable_diff() : nullptr, bottom[0]->cdata(),
                             top[0]->cdiff(), blobs_[0]->cdata(), cuda::stream());
}
#else
COCO_CUDA_STUBS(ConvolutionLayer)
#endif

}  // namespace coco
