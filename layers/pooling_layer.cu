// Pooling kernels (Caffe's windows, the CPU's summation order) and cuDNN average
// pooling (layers/pooling_cuda.h says which runs when).
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cfloat>
#include <cstdint>

#include "engine/cuda_check.cuh"
#include "layers/cudnn_check.cuh"
#include "layers/pooling_cuda.h"

namespace coco {

namespace {

// Geometry as the kernels take it (int: a plane of more than 2^31 values does not
// occur; the plane index and flat offsets are 64-bit).
struct Geo {
  int H, W, Ho, Wo, kh, kw, sh, sw, ph, pw;
};

Geo geo_of(const PoolGeometry& g) {
  auto i = [](int64_t v, const char* what) { return cuda::cudnn_dim(v, what); };
  COCO_CHECK(g.h * g.w <= 0x7fffffff, "pooling: a plane of ", g.h, "x", g.w, " does not fit int32 indices");
  return Geo{i(g.h, "H"),   i(g.w, "W"),   i(g.out_h, "Ho"), i(g.out_w, "Wo"), i(g.kh, "kernel_h"),
             i(g.kw, "kernel_w"), i(g.sh, "stride_h"), i(g.sw, "stride_w"), i(g.ph, "pad_h"), i(g.pw, "pad_w")};
}

// One thread per output; the window as the CPU's forward_cpu clips it, scanned
// row-major with a strict '>' (the first maximum wins).
__global__ void max_pool_forward_kernel(float* y, int32_t* argmax, const float* x, int64_t total, Geo g) {
  COCO_KERNEL_LOOP(i, total) {
    const int64_t plane = i / (static_cast<int64_t>(g.Ho) * g.Wo);
    const int r = static_cast<int>(i - plane * g.Ho * g.Wo);
    const int oh = r / g.Wo, ow = r - oh * g.Wo;
    int h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    const int h1 = min(h0 + g.kh, g.H), w1 = min(w0 + g.kw, g.W);
    h0 = max(h0, 0), w0 = max(w0, 0);
    const float* xp = x + plane * g.H * g.W;
    float best = -FLT_MAX;
    int32_t best_i = -1;
    for (int h = h0; h < h1; ++h)
      for (int w = w0; w < w1; ++w) {
        const float v = xp[h * g.W + w];
        if (v > best) best = v, best_i = h * g.W + w;
      }
    y[i] = best;
    argmax[i] = best_i;
  }
}

// The windows containing input row h: oh in [lo, hi) (Caffe's backward formula).
__device__ __forceinline__ void windows_of(int h, int pad, int k, int s, int out, int* lo, int* hi) {
  *lo = (h + pad < k) ? 0 : (h + pad - k) / s + 1;
  *hi = min((h + pad) / s + 1, out);
}

// One thread per input; the windows containing it in row-major order -- the order
// in which the CPU's scatter adds into it -- so the sums agree bit for bit.
__global__ void max_pool_backward_kernel(float* dx, const float* dy, const int32_t* argmax, int64_t total, Geo g) {
  COCO_KERNEL_LOOP(i, total) {
    const int64_t plane = i / (static_cast<int64_t>(g.H) * g.W);
    const int r = static_cast<int>(i - plane * g.H * g.W);
    const int h = r / g.W, w = r - h * g.W;
    int oh0, oh1, ow0, ow1;
    windows_of(h, g.ph, g.kh, g.sh, g.Ho, &oh0, &oh1);
    windows_of(w, g.pw, g.kw, g.sw, g.Wo, &ow0, &ow1);
    const int64_t base = plane * g.Ho * g.Wo;
    float s = 0.f;
    for (int oh = oh0; oh < oh1; ++oh)
      for (int ow = ow0; ow < ow1; ++ow) {
        const int64_t o = base + oh * g.Wo + ow;
        if (argmax[o] == r) s += dy[o];
      }
    dx[i] = s;
  }
}

// The CPU's window and divisor: the window clipped to the padded image sets the
// divisor, the window clipped to the image is summed.
__device__ __forceinline__ void ave_window(int oh, int ow, const Geo& g, int* h0, int* h1, int* w0, int* w1,
                                           int* pool_size) {
  int a0 = oh * g.sh - g.ph, b0 = ow * g.sw - g.pw;
  int a1 = min(a0 + g.kh, g.H + g.ph), b1 = min(b0 + g.kw, g.W + g.pw);
  *pool_size = (a1 - a0) * (b1 - b0);
  *h0 = max(a0, 0), *w0 = max(b0, 0);
  *h1 = min(a1, g.H), *w1 = min(b1, g.W);
}

__global__ void ave_pool_forward_kernel(float* y, const float* x, int64_t total, Geo g) {
  COCO_KERNEL_LOOP(i, total) {
    const int64_t plane = i / (static_cast<int64_t>(g.Ho) * g.Wo);
    const int r = static_cast<int>(i - plane * g.Ho * g.Wo);
    const int oh = r / g.Wo, ow = r - oh * g.Wo;
    int h0, h1, w0, w1, pool_size;
    ave_window(oh, ow, g, &h0, &h1, &w0, &w1, &pool_size);
    const float* xp = x + plane * g.H * g.W;
    float s = 0.f;
    for (int h = h0; h < h1; ++h)
      for (int w = w0; w < w1; ++w) s += xp[h * g.W + w];
    y[i] = __fdiv_rn(s, static_cast<float>(pool_size));
  }
}

__global__ void ave_pool_backward_kernel(float* dx, const float* dy, int64_t total, Geo g) {
  COCO_KERNEL_LOOP(i, total) {
    const int64_t plane = i / (static_cast<int64_t>(g.H) * g.W);
    const int r = static_cast<int>(i - plane * g.H * g.W);
    const int h = r / g.W, w = r - h * g.W;
    int oh0, oh1, ow0, ow1;
    windows_of(h, g.ph, g.kh, g.sh, g.Ho, &oh0, &oh1);
    windows_of(w, g.pw, g.kw, g.sw, g.Wo, &ow0, &ow1);
    const float* dyp = dy + plane * g.Ho * g.Wo;
    float s = 0.f;
    for (int oh = oh0; oh < oh1; ++oh)
      for (int ow = ow0; ow < ow1; ++ow) {
        int h0, h1, w0, w1, pool_size;
        ave_window(oh, ow, g, &h0, &h1, &w0, &w1, &pool_size);
        s += __fdiv_rn(dyp[oh * g.Wo + ow], static_cast<float>(pool_size));
      }
    dx[i] = s;
  }
}

}  // namespace

void max_pool_forward_cuda(float* y, int32_t* argmax, const float* x, const PoolGeometry& g,
                           cuda::Stream stream) {
  const int64_t total = g.n * g.c * g.out_h * g.out_w;
  if (total == 0) return;
  max_pool_forward_kernel<<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(y, argmax, x, total, geo_of(g));
  cuda::check_launch("max_pool_forward_kernel");
}

void max_pool_backward_cuda(float* dx, const float* dy, const int32_t* argmax, const PoolGeometry& g,
                            cuda::Stream stream) {
  const int64_t total = g.n * g.c * g.h * g.w;
  if (total == 0) return;
  max_pool_backward_kernel<<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(dx, dy, argmax, total,
                                                                                   geo_of(g));
  cuda::check_launch("max_pool_backward_kernel");
}

void ave_pool_forward_cuda(float* y, const float* x, const PoolGeometry& g, cuda::Stream stream) {
  const int64_t total = g.n * g.c * g.out_h * g.out_w;
  if (total == 0) return;
  ave_pool_forward_kernel<<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(y, x, total, geo_of(g));
  cuda::check_launch("ave_pool_forward_kernel");
}

void ave_pool_backward_cuda(float* dx, const float* dy, const PoolGeometry& g, cuda::Stream stream) {
  const int64_t total = g.n * g.c * g.h * g.w;
  if (total == 0) return;
  ave_pool_backward_kernel<<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(dx, dy, total, geo_of(g));
  cuda::check_launch("ave_pool_backward_kernel");
}

// ---- cuDNN average pooling ----

struct CudnnAvePooling::Impl {
  cudnnPoolingDescriptor_t pool = nullptr;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  PoolGeometry g;
  bool set = false;
};

CudnnAvePooling::CudnnAvePooling() : impl_(new Impl) {
  COCO_CUDNN_CHECK(cudnnCreatePoolingDescriptor(&impl_->pool));
  COCO_CUDNN_CHECK(cudnnCreateTensorDescriptor(&impl_->x));
  COCO_CUDNN_CHECK(cudnnCreateTensorDescriptor(&impl_->y));
}

CudnnAvePooling::~CudnnAvePooling() {
  // No throwing from a destructor: a failed destroy only leaks a descriptor.
  if (impl_->y) cudnnDestroyTensorDescriptor(impl_->y);
  if (impl_->x) cudnnDestroyTensorDescriptor(impl_->x);
  if (impl_->pool) cudnnDestroyPoolingDescriptor(impl_->pool);
}

bool CudnnAvePooling::expresses(const PoolGeometry& g) {
  auto fits = [](int64_t size, int64_t k, int64_t s, int64_t p, int64_t out) {
    return out >= 1 && (out - 1) * s + k <= size + 2 * p && (size + 2 * p - k) / s + 1 == out;
  };
  const bool int_sized = g.n * g.c * g.h * g.w <= 0x7fffffff && g.n <= 0x7fffffff && g.c <= 0x7fffffff;
  return int_sized && fits(g.h, g.kh, g.sh, g.ph, g.out_h) && fits(g.w, g.kw, g.sw, g.pw, g.out_w);
}

void CudnnAvePooling::set_geometry(const PoolGeometry& g) {
  Impl& m = *impl_;
  if (m.set && m.g == g) return;
  COCO_CHECK(expresses(g), "cuDNN average pooling cannot take this geometry");
  using cuda::cudnn_dim;
  COCO_CUDNN_CHECK(cudnnSetPooling2dDescriptor(m.pool, CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING,
                                               CUDNN_PROPAGATE_NAN, cudnn_dim(g.kh, "kernel_h"),
                                               cudnn_dim(g.kw, "kernel_w"), cudnn_dim(g.ph, "pad_h"),
                                               cudnn_dim(g.pw, "pad_w"), cudnn_dim(g.sh, "stride_h"),
                                               cudnn_dim(g.sw, "stride_w")));
  COCO_CUDNN_CHECK(cudnnSetTensor4dDescriptor(m.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, cudnn_dim(g.n, "N"),
                                              cudnn_dim(g.c, "C"), cudnn_dim(g.h, "H"), cudnn_dim(g.w, "W")));
  COCO_CUDNN_CHECK(cudnnSetTensor4dDescriptor(m.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, cudnn_dim(g.n, "N"),
                                              cudnn_dim(g.c, "C"), cudnn_dim(g.out_h, "Ho"),
                                              cudnn_dim(g.out_w, "Wo")));
  int n = 0, c = 0, h = 0, w = 0;
  COCO_CUDNN_CHECK(cudnnGetPooling2dForwardOutputDim(m.pool, m.x, &n, &c, &h, &w));
  COCO_CHECK(n == g.n && c == g.c && h == g.out_h && w == g.out_w, "cuDNN pooling output ", n, "x", c, "x", h, "x",
             w, " differs from Caffe's ", g.n, "x", g.c, "x", g.out_h, "x", g.out_w);
  m.g = g;
  m.set = true;
}

void CudnnAvePooling::forward(float* y, const float* x, cuda::Stream) {
  COCO_CHECK(impl_->set, "CudnnAvePooling::forward before set_geometry");
  const float one = 1.f, zero = 0.f;
  COCO_CUDNN_CHECK(cudnnPoolingForward(cuda::cudnn(), impl_->pool, &one, impl_->x, x, &zero, impl_->y, y));
}

void CudnnAvePooling::backward(float* dx, const float* dy, const float* y, const float* x, cuda::Stream) {
  COCO_CHECK(impl_->set, "CudnnAvePooling::backward before set_geometry");
  const float one = 1.f, zero = 0.f;
  COCO_CUDNN_CHECK(cudnnPoolingBackward(cuda::cudnn(), impl_->pool, &one, impl_->y, y, impl_->y, dy, impl_->x, x,
                                        &zero, impl_->x, dx));
}

}  // namespace coco
