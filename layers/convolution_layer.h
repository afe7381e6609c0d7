// Convolution (Caffe's): 2-D, NCHW, with groups, stride, padding and dilation.
//
// Why it is built this way: on a CPU the work is three GEMMs per step, and
// OpenBLAS is only fast when they are large. So im2col unfolds SEVERAL images at
// once into one column buffer (C_in*kh*kw, n_img*Ho*Wo), capped in bytes, and each
// GEMM runs over N = n_img*Ho*Wo columns; the result (C_out, n_img*Ho*Wo) is then
// scattered into NCHW. Backward gathers the top diff the same way, accumulates the
// weight gradient dY * col^T, and writes the bottom gradient through W^T * dY and
// col2im (reusing the column buffer). Buffers are members that only grow.
//
// Threads: when the batch has at least as many images as OpenMP threads, each
// thread takes a fixed, contiguous slice of the batch and runs im2col, a
// single-threaded GEMM and the scatter on it (OpenBLAS is set to one thread for
// the duration). Mixing OpenMP loops with OpenBLAS's own pthreads instead makes
// the two pools spin against each other, which halved the speed on two cores.
// Weight/bias gradients are summed per thread and reduced in thread order, so a
// run is deterministic for a given thread count. Smaller batches use one slice
// and OpenBLAS's threads.
//
// With oneDNN (COCO_WITH_DNNL, engine DEFAULT) the CPU path is oneDNN's instead
// (layers/dnnl_convolution.h), about twice as fast here; im2col + GEMM remains the
// reference implementation and runs with `engine: CAFFE`.
//
// On CUDA tensors the layer runs cuDNN whatever the engine (layers/convolution_cuda.h):
// descriptors set on reshape, algorithms cached per input shape.
//
// Shapes: bottom (N, C_in, H, W); weight (C_out, C_in/group, kh, kw); bias (C_out);
// top (N, C_out, Ho, Wo), Ho = (H + 2*pad_h - (dilation_h*(kh-1)+1)) / stride_h + 1.
#pragma once

#include <memory>
#include <vector>

#include "engine/layer.h"
#include "layers/convolution_cuda.h"
#include "layers/dnnl_convolution.h"

namespace coco {

class ConvolutionLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Convolution"; }
  void reshape(const Blobs& bottom, const Blobs& top) override;

  // Default cap of each thread's column buffer in bytes (one image always fits).
  static constexpr int64_t kDefaultColBufferBytes = int64_t{2} << 20;
  // Test/benchmark hook: a different cap (bytes, > 0).
  void set_col_buffer_limit(int64_t bytes);
  // Images unfolded per GEMM in the last forward/backward.
  int64_t images_per_chunk() const { return chunk_; }
  // Whether the oneDNN path runs (engine DEFAULT in a build with oneDNN); engine
  // CAFFE selects im2col + GEMM, the reference.
  bool uses_dnnl() const { return use_dnnl_; }

 protected:
  void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) override;
  void forward_cpu(const Blobs& bottom, const Blobs& top) override;
  void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;
  void forward_cuda(const Blobs& bottom, const Blobs& top) override;
  void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) override;

 private:
  // One thread's buffers.
  struct Workspace {
    std::vector<float> col;      // (C_in*kh*kw, chunk*Ho*Wo): columns; in backward, their gradient
    std::vector<float> out;      // (C_out, chunk*Ho*Wo): GEMM result / gathered top diff
    std::vector<float> dweight;  // (C_out, C_in/group, kh, kw): this thread's weight gradient
    std::vector<float> dbias;    // (C_out): this thread's bias gradient
  };

  // The fp32 convolution with the given operands, by oneDNN or im2col + GEMM: y =
  // conv(x, w) + b (b null: none); dw, db (+=, db null: none) and dx (=, null: none).
  void forward_fp32(const float* x, const float* w, const float* b, float* y);
  void backward_fp32(const float* x, const float* dy, const float* w, float* dw, float* db, float* dx);
  // BF16/FP16 (engine/precision.h): the emulation of cuDNN on 16-bit tensors.
  void forward_reduced(const float* x, float* y);
  void backward_reduced(const float* dy, float* dx);
  // Threads to split the batch over (1: one slice, threaded BLAS); sizes chunk_ and
  // the workspaces for it.
  int prepare(bool backward);
  // Images [begin, end) of the batch, with one thread's workspace.
  void forward_range(const float* x, const float* w, const float* b, float* y, int64_t begin, int64_t end,
                     Workspace& ws) const;
  // dweight/dbias (+=) and, if dx, dx (=) for images [begin, end).
  void backward_range(const float* x, const float* dy, const float* w, float* dx, float* dweight, float* dbias,
                      int64_t begin, int64_t end, Workspace& ws) const;
  // col (C_in*kh*kw, n_img*Ho*Wo) = unfolded x (n_img, C_in, H, W).
  void im2col(const float* x, int64_t n_img, float* col) const;
  // dx (n_img, C_in, H, W) = (written, not accumulated) the fold of col.
  void col2im(const float* col, int64_t n_img, float* dx) const;

  // Geometry, fixed at setup.
  int64_t num_output_ = 0, group_ = 1;
  int64_t kh_ = 0, kw_ = 0, sh_ = 1, sw_ = 1, ph_ = 0, pw_ = 0, dh_ = 1, dw_ = 1;
  bool has_bias_ = true;
  int64_t channels_ = 0;  // C_in, fixed at setup (the weights depend on it)
  // Per reshape.
  int64_t num_ = 0, height_ = 0, width_ = 0, out_h_ = 0, out_w_ = 0;
  int64_t chunk_ = 1;  // images per column buffer
  int64_t col_limit_bytes_ = kDefaultColBufferBytes;
  std::vector<Workspace> ws_;  // one per thread
  bool use_dnnl_ = false;
  // The reduced-precision emulation's rounded operands (x kept for the backward),
  // the weight gradient before its rounding, and zeros for oneDNN's bias slots.
  std::vector<float> x_round_, w_round_, dy_round_, dw_round_, zeros_;
  std::unique_ptr<DnnlConvolution> dnnl_;  // primitives for the current input shape
  DnnlConvolution& dnnl_for_shape();
  ConvGeometry geometry() const;  // of the current input shape
  // The CUDA path's descriptors and algorithm cache (made on first use, CUDA build
  // only). A shared_ptr: its deleter is bound where it is made, so a build without
  // CUDA, which never defines CudnnConvolution's destructor, still links.
  std::shared_ptr<CudnnConvolution> cudnn_;
  CudnnConvolution& cudnn_for_shape();  // defined in a CUDA build only
};

}  // namespace coco
