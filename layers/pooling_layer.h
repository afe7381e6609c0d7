// Pooling (Caffe's): MAX or AVE over 2-D windows of NCHW planes, with padding,
// stride and global pooling.
//
// Why it looks like this: the seed's networks were trained with Caffe, so the
// output size and the windows follow Caffe exactly -- CEIL rounding by default
// (round_mode FLOOR optional), the last window must start inside the image when
// padded, MAX ignores the padding, and AVE divides by the window clipped to the
// padded image (not to the image). MAX remembers the argmax of every output so
// backward routes each top gradient to exactly one input. STOCHASTIC is refused.
//
// Shapes: bottom (N, C, H, W); top (N, C, Ho, Wo),
// Ho = ceil_or_floor((H + 2*pad_h - kernel_h) / stride_h) + 1, less one if the last
// window would start in the bottom/right padding.
//
// CUDA: coco's kernels for MAX (and for AVE where cuDNN's rule differs), cuDNN for
// AVE where it is Caffe's rule; layers/pooling_cuda.h says why.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/layer.h"
#include "layers/pooling_cuda.h"

namespace coco {

class PoolingLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Pooling"; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;

 private:
  enum class Method { kMax, kAve };
  enum class Rounding { kCeil, kFloor };

  Method method_ = Method::kMax;
  Rounding rounding_ = Rounding::kCeil;
  bool global_ = false;
  int64_t kh_ = 0, kw_ = 0, sh_ = 1, sw_ = 1, ph_ = 0, pw_ = 0;
  int64_t num_ = 0, channels_ = 0, height_ = 0, width_ = 0, out_h_ = 0, out_w_ = 0;
  std::vector<int32_t> argmax_;  // (N, C, Ho, Wo): MAX only, h*W + w of the winner in its plane
  PoolGeometry geometry() const;
  // The CUDA path (used in a CUDA build only). argmax_ on the device (MAX): int32
  // values in a float tensor's storage (same size).
  Tensor argmax_cuda_;
  // cuDNN's AVE descriptors, made on first use. A shared_ptr: its deleter is bound
  // where it is made, so a build without CUDA, which never defines CudnnAvePooling's
  // destructor, still links.
  std::shared_ptr<CudnnAvePooling> cudnn_ave_;
  // AVE through cuDNN for the current geometry (not in deterministic mode). Defined
  // in a CUDA build only.
  bool use_cudnn_ave(const PoolGeometry& g) const;
};

}  // namespace coco
