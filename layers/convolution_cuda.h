// cuDNN convolution for ConvolutionLayer on CUDA tensors (layers/convolution_layer.cu).
//
// Why it is built this way: cuDNN's legacy convolution API (cudnnConvolutionForward,
// BackwardData, BackwardFilter) covers everything the CPU layer does -- groups
// (cudnnSetConvolutionGroupCount), stride, padding, dilation -- on plain NCHW
// tensors. Algorithms come from cuDNN's heuristics (cudnnGet*Algorithm_v7): the
// first one that reports success, fits the workspace cap and, when
// coco::cuda::deterministic() is on, is deterministic (Caffe's/cuDNN's BwdData
// ALGO_0 and BwdFilter ALGO_0/3 use atomics). The heuristics need no device work or
// memory (cudnnFind* would time every algorithm with cudaMalloc'd buffers beside the
// caching allocator), and they give the same choice every run. The choice and its
// workspace sizes are cached per input shape (and determinism); the workspace
// itself is coco::cuda::workspace().
//
// Math: CUDNN_FMA_MATH, i.e. plain FP32, never TF32 tensor cores -- the CPU layer is
// the oracle and TF32's 10-bit mantissa would not match it (nor the CPU-trained
// seed models). Solver precision BF16/FP16 runs on 16-bit tensors with tensor-op
// math, which the CPU layer emulates (engine/precision.h). The bias is added and its gradient summed by coco's own kernels
// (the gradient as a deterministic per-channel reduction in double).
//
// Gradient contract as the CPU layer's: weight and bias diffs accumulate (+=, cuDNN
// beta = 1), the bottom diff is written (=).
#pragma once

#include <memory>
#include <string>

#include "engine/cuda_runtime.h"
#include "engine/precision.h"
#include "layers/dnnl_convolution.h"  // ConvGeometry (plain C++)

namespace coco {

class CudnnConvolution {
 public:
  CudnnConvolution();  // creates the descriptors (on the current device's cuDNN)
  ~CudnnConvolution();
  CudnnConvolution(const CudnnConvolution&) = delete;
  CudnnConvolution& operator=(const CudnnConvolution&) = delete;

  // Sets the descriptors for g and picks (or finds in the cache) the algorithms for
  // it under the current coco::cuda::deterministic(). Cheap when nothing changed.
  // BF16/FP16: the tensors cuDNN sees are 16-bit copies (x, w, dy rounded; y, dx
  // and the weight gradient written in the format, then widened), summed in fp32.
  void set_geometry(const ConvGeometry& g, Precision precision = Precision::kFP32);
  // y (N, OC, OH, OW) (=) = conv(x (N, C, H, W), w (OC, C/group, kh, kw)) + b (OC); b
  // may be null.
  void forward(float* y, const float* x, const float* w, const float* b, cuda::Stream stream);
  // dw (+=), db (+=, null: none), dx (=, null: none) from dy (N, OC, OH, OW).
  void backward(float* dw, float* db, float* dx, const float* x, const float* dy, const float* w,
                cuda::Stream stream);
  // The algorithms picked for the current geometry, for logs and tests
  // ("fwd 1 (0 B), bwd data 1 (0 B), bwd filter 1 (0 B)").
  std::string describe() const;

  // Largest workspace an algorithm may ask for; above it the next candidate is
  // taken (or, when none fits, the one asking the least).
  static constexpr size_t kMaxWorkspaceBytes = size_t{1} << 30;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coco
