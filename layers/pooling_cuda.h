// CUDA pooling for PoolingLayer (kernels and cuDNN calls in layers/pooling_layer.cu).
//
// Why two kinds of code: cuDNN's average pooling divides by the full window
// (CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING), which is Caffe's rule exactly when
// every window lies inside the padded image -- always true for FLOOR rounding, and
// for CEIL rounding when it adds no extra window. Caffe's CEIL windows that run past
// the padded image divide by the window clipped to it, which cuDNN cannot express,
// and cuDNN's max-pooling backward re-derives the winner from x and y with its own
// rule for ties (ReLU outputs tie at 0 all the time), while Caffe routes the
// gradient to the first maximum in row-major order. So MAX always runs coco's
// kernels (they keep the argmax), AVE runs cuDNN where it matches and coco's
// kernels otherwise (and in deterministic mode). coco's kernels sum in the CPU's
// order, so they agree with the CPU bit for bit.
//
// All pointers are device pointers; everything runs on `stream` (cuDNN: on
// coco::cuda::cudnn(), bound to the same stream).
#pragma once

#include <cstdint>
#include <memory>

#include "engine/cuda_runtime.h"

namespace coco {

// (planes = N*C, H, W) in, (planes, Ho, Wo) out; windows kh x kw at stride (sh, sw)
// from (-ph, -pw). Ho and Wo are Caffe's (PoolingLayer::reshape).
struct PoolGeometry {
  int64_t n = 0, c = 0, h = 0, w = 0, out_h = 0, out_w = 0;
  int64_t kh = 0, kw = 0, sh = 1, sw = 1, ph = 0, pw = 0;
  bool operator==(const PoolGeometry& o) const {
    return n == o.n && c == o.c && h == o.h && w == o.w && out_h == o.out_h && out_w == o.out_w && kh == o.kh &&
           kw == o.kw && sh == o.sh && sw == o.sw && ph == o.ph && pw == o.pw;
  }
  bool operator!=(const PoolGeometry& o) const { return !(*this == o); }
};

// y (planes, Ho, Wo) = max over each window (padding ignored); argmax (planes, Ho,
// Wo) = h*W + w of the first maximum in its plane (row-major), -1 if none.
void max_pool_forward_cuda(float* y, int32_t* argmax, const float* x, const PoolGeometry& g,
                           cuda::Stream stream);
// dx (planes, H, W) (=): each input gathers the top gradients whose argmax it is.
void max_pool_backward_cuda(float* dx, const float* dy, const int32_t* argmax, const PoolGeometry& g,
                            cuda::Stream stream);
// y = sum over the window clipped to the image / size of the window clipped to the
// padded image (Caffe's AVE).
void ave_pool_forward_cuda(float* y, const float* x, const PoolGeometry& g, cuda::Stream stream);
// dx (=): each input gathers dy / (window size) over the windows that contain it.
void ave_pool_backward_cuda(float* dx, const float* dy, const PoolGeometry& g, cuda::Stream stream);

// cuDNN average pooling for the geometries where it is Caffe's (see above).
class CudnnAvePooling {
 public:
  CudnnAvePooling();  // creates the descriptors
  ~CudnnAvePooling();
  CudnnAvePooling(const CudnnAvePooling&) = delete;
  CudnnAvePooling& operator=(const CudnnAvePooling&) = delete;

  // Whether cuDNN computes Caffe's AVE for g (every window inside the padded image,
  // and cuDNN's own output size is Ho x Wo).
  static bool expresses(const PoolGeometry& g);
  // Sets the descriptors for g (only when it changed). expresses(g) must hold.
  void set_geometry(const PoolGeometry& g);
  void forward(float* y, const float* x, cuda::Stream stream);
  // dx (=); y and x are the forward's (cuDNN's interface wants them).
  void backward(float* dx, const float* dy, const float* y, const float* x, cuda::Stream stream);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coco
