// oneDNN (DNNL) convolution for CPU tensors: the fast path of ConvolutionLayer.
//
// Why: im2col + OpenBLAS reached ~135 GFLOP/s on LeNet++'s shapes here, while
// oneDNN's JIT AVX-512 kernels on blocked layouts (nChw16c) reach 250-300 on the
// same 2 cores. Activations stay NCHW between layers (every coco layer reads NCHW);
// each call reorders into and out of the layouts oneDNN picked, which costs a few
// percent of the convolution. The source in the blocked layout is kept from forward
// for the weight gradient. Primitives are built per input shape and cached.
//
// Gradient contract as ConvolutionLayer's: weight/bias diffs are accumulated (+=),
// the bottom diff is written (=). The im2col path stays the oracle (engine: CAFFE).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace coco {

struct ConvGeometry {
  int64_t n = 0, c = 0, h = 0, w = 0;           // input (N, C, H, W)
  int64_t oc = 0, oh = 0, ow = 0;                // output channels and size
  int64_t kh = 0, kw = 0, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1, group = 1;
  bool bias = true;
  bool operator==(const ConvGeometry& o) const;
};

class DnnlConvolution {
 public:
  explicit DnnlConvolution(const ConvGeometry& g);
  ~DnnlConvolution();
  const ConvGeometry& geometry() const { return g_; }
  // y (N, OC, OH, OW) = conv(x (N, C, H, W), w (OC, C/g, kh, kw)) + b (OC).
  void forward(const float* x, const float* w, const float* b, float* y);
  // dw (+=), db (+=), and dx (=) if not null. Uses the x of the last forward.
  void backward(const float* dy, const float* w, float* dw, float* db, float* dx);
  // Whether oneDNN picked a JIT kernel (not its GEMM fallback) -- for logs and tests.
  std::string implementation() const;

 private:
  struct Impl;
  ConvGeometry g_;
  std::unique_ptr<Impl> impl_;
};

// True in builds with oneDNN.
bool dnnl_available();

}  // namespace coco
