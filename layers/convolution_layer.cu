// cuDNN convolution (layers/convolution_cuda.h) and the bias kernels.
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/cuda_check.cuh"
#include "engine/cuda_math.h"
#include "layers/convolution_cuda.h"
#include "layers/cudnn_check.cuh"

namespace coco {

namespace {

constexpr int kBiasThreads = 512;

// The kernels index with 32 bits: set_geometry() refuses tensors of 2^31 values or
// more (cuDNN's 4-D descriptors cannot take them either).

// y (N, C, S) += b[c].
__global__ void add_bias_kernel(float* y, const float* b, uint32_t C, uint32_t S, uint32_t total) {
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += blockDim.x * gridDim.x)
    y[i] += b[(i / S) % C];
}

// db[c] += sum over n, s of dy (N, C, S): one block per channel, double partial
// sums, a fixed reduction tree -- deterministic, no atomics.
__global__ void bias_grad_kernel(float* db, const float* dy, uint32_t N, uint32_t C, uint32_t S) {
  __shared__ double shared[kBiasThreads / 32];
  const uint32_t m = N * S;
  for (uint32_t c = blockIdx.x; c < C; c += gridDim.x) {
    double s = 0;
    for (uint32_t i = threadIdx.x; i < m; i += blockDim.x) {
      const uint32_t n = i / S, k = i - n * S;
      s += dy[(static_cast<size_t>(n) * C + c) * S + k];
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) shared[warp] = s;
    __syncthreads();
    if (warp == 0) {
      s = lane < static_cast<int>(blockDim.x >> 5) ? shared[lane] : 0.0;
      for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
      if (lane == 0) db[c] += static_cast<float>(s);
    }
    __syncthreads();  // `shared` is reused for the next channel
  }
}

void add_bias(float* y, const float* b, int64_t N, int64_t C, int64_t S, cuda::Stream stream) {
  const int64_t total = N * C * S;
  if (total == 0) return;
  add_bias_kernel<<<cuda::blocks_for(total), cuda::kThreads, 0, stream>>>(
      y, b, static_cast<uint32_t>(C), static_cast<uint32_t>(S), static_cast<uint32_t>(total));
  cuda::check_launch("conv add_bias_kernel");
}

void bias_grad(float* db, const float* dy, int64_t N, int64_t C, int64_t S, cuda::Stream stream) {
  if (C == 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(C, 65535));
  bias_grad_kernel<<<blocks, kBiasThreads, 0, stream>>>(db, dy, static_cast<uint32_t>(N), static_cast<uint32_t>(C),
                                                        static_cast<uint32_t>(S));
  cuda::check_launch("conv bias_grad_kernel");
}

struct Algos {
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  size_t fwd_ws = 0, bwd_data_ws = 0, bwd_filter_ws = 0;
};

// The first usable candidate of cuDNN's ranking: reported successful, deterministic
// if asked, its workspace query succeeds (the configuration is supported with the
// descriptor's FMA math) and within the cap; else the usable one asking the least.
template <typename Perf, typename Algo, typename WsQuery>
bool pick(const std::vector<Perf>& ranked, bool deterministic, WsQuery ws_query, Algo* algo, size_t* ws) {
  bool have_fallback = false;
  Algo fb_algo{};
  size_t fb_ws = 0;
  for (const Perf& p : ranked) {
    if (p.status != CUDNN_STATUS_SUCCESS) continue;
    if (deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
    size_t need = 0;
    if (ws_query(p.algo, &need) != CUDNN_STATUS_SUCCESS) continue;
    if (need <= CudnnConvolution::kMaxWorkspaceBytes) {
      *algo = p.algo;
      *ws = need;
      return true;
    }
    if (!have_fallback || need < fb_ws) have_fallback = true, fb_algo = p.algo, fb_ws = need;
  }
  if (!have_fallback) return false;
  *algo = fb_algo;
  *ws = fb_ws;
  return true;
}

std::string geometry_str(const ConvGeometry& g) {
  std::ostringstream os;
  os << "input " << g.n << "x" << g.c << "x" << g.h << "x" << g.w << ", output " << g.oc << "x" << g.oh << "x"
     << g.ow << ", kernel " << g.kh << "x" << g.kw << ", stride " << g.sh << "x" << g.sw << ", pad " << g.ph << "x"
     << g.pw << ", dilation " << g.dh << "x" << g.dw << ", group " << g.group;
  return os.str();
}

}  // namespace

struct CudnnConvolution::Impl {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  ConvGeometry g;
  bool set = false;
  bool deterministic = false;
  Precision precision = Precision::kFP32;
  // Key: (N, C, H, W, deterministic, precision); the rest of the geometry is fixed
  // by the layer.
  std::map<std::array<int64_t, 6>, Algos> cache;
  const Algos* cur = nullptr;

  Algos choose(cudnnHandle_t h) const;
};

CudnnConvolution::CudnnConvolution() : impl_(new Impl) {
  COCO_CUDNN_CHECK(cudnnCreateTensorDescriptor(&impl_->x));
  COCO_CUDNN_CHECK(cudnnCreateTensorDescriptor(&impl_->y));
  COCO_CUDNN_CHECK(cudnnCreateFilterDescriptor(&impl_->w));
  COCO_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&impl_->conv));
}

CudnnConvolution::~CudnnConvolution() {
  // No throwing from a destructor: a failed destroy only leaks a descriptor.
  if (impl_->conv) cudnnDestroyConvolutionDescriptor(impl_->conv);
  if (impl_->w) cudnnDestroyFilterDescriptor(impl_->w);
  if (impl_->y) cudnnDestroyTensorDescriptor(impl_->y);
  if (impl_->x) cudnnDestroyTensorDescriptor(impl_->x);
}

Algos CudnnConvolution::Impl::choose(cudnnHandle_t h) const {
  Algos a;
  const std::string where = " for the convolution with " + geometry_str(g) +
                            (deterministic ? " (deterministic mode)" : "") +
                            (precision == Precision::kFP32 ? "" : std::string(" at precision ") + precision_name(precision));
  {
    int max_count = 0;
    COCO_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> r(std::max(max_count, 1));
    int got = 0;
    COCO_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, x, w, conv, y, static_cast<int>(r.size()), &got,
                                                            r.data()));
    r.resize(got);
    auto q = [&](cudnnConvolutionFwdAlgo_t algo, size_t* need) {
      return cudnnGetConvolutionForwardWorkspaceSize(h, x, w, conv, y, algo, need);
    };
    if (!pick(r, deterministic, q, &a.fwd, &a.fwd_ws))
      COCO_THROW("cuDNN offers no usable forward algorithm", where);
  }
  {
    int max_count = 0;
    COCO_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max_count));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> r(std::max(max_count, 1));
    int got = 0;
    COCO_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, w, y, conv, x, static_cast<int>(r.size()), &got,
                                                                 r.data()));
    r.resize(got);
    auto q = [&](cudnnConvolutionBwdDataAlgo_t algo, size_t* need) {
      return cudnnGetConvolutionBackwardDataWorkspaceSize(h, w, y, conv, x, algo, need);
    };
    if (!pick(r, deterministic, q, &a.bwd_data, &a.bwd_data_ws))
      COCO_THROW("cuDNN offers no usable backward-data algorithm", where);
  }
  {
    int max_count = 0;
    COCO_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max_count));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> r(std::max(max_count, 1));
    int got = 0;
    COCO_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, x, y, conv, w, static_cast<int>(r.size()),
                                                                   &got, r.data()));
    r.resize(got);
    auto q = [&](cudnnConvolutionBwdFilterAlgo_t algo, size_t* need) {
      return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, x, y, conv, w, algo, need);
    };
    if (!pick(r, deterministic, q, &a.bwd_filter, &a.bwd_filter_ws))
      COCO_THROW("cuDNN offers no usable backward-filter algorithm", where);
  }
  return a;
}

namespace {
cudnnDataType_t cudnn_type(Precision p) {
  switch (p) {
    case Precision::kFP32: return CUDNN_DATA_FLOAT;
    case Precision::kBF16: return CUDNN_DATA_BFLOAT16;
    case Precision::kFP16: return CUDNN_DATA_HALF;
  }
  return CUDNN_DATA_FLOAT;
}
}  // namespace

void CudnnConvolution::set_geometry(const ConvGeometry& g, Precision precision) {
  Impl& m = *impl_;
  const bool det = cuda::deterministic();
  if (m.set && m.g == g && m.deterministic == det && m.precision == precision) return;
  using cuda::cudnn_dim;
  COCO_CHECK(g.group > 0 && g.c % g.group == 0 && g.oc % g.group == 0, "bad convolution groups: ",
             geometry_str(g));
  COCO_CHECK(g.n * g.c * g.h * g.w <= 0x7fffffff && g.n * g.oc * g.oh * g.ow <= 0x7fffffff,
             "a convolution tensor has more than 2^31 values (", geometry_str(g), "); cuDNN's 4-D descriptors do not "
             "take it: use a smaller batch");
  if (!(m.set && m.g == g && m.precision == precision)) {
    // 16-bit tensors, fp32 sums (cuDNN's PSEUDO_HALF / PSEUDO_BFLOAT16 configurations,
    // on tensor cores); FP32 stays plain FMA math, never TF32.
    const cudnnDataType_t t = cudnn_type(precision);
    COCO_CUDNN_CHECK(cudnnSetTensor4dDescriptor(m.x, CUDNN_TENSOR_NCHW, t, cudnn_dim(g.n, "N"),
                                                cudnn_dim(g.c, "C"), cudnn_dim(g.h, "H"), cudnn_dim(g.w, "W")));
    COCO_CUDNN_CHECK(cudnnSetTensor4dDescriptor(m.y, CUDNN_TENSOR_NCHW, t, cudnn_dim(g.n, "N"),
                                                cudnn_dim(g.oc, "num_output"), cudnn_dim(g.oh, "output height"),
                                                cudnn_dim(g.ow, "output width")));
    COCO_CUDNN_CHECK(cudnnSetFilter4dDescriptor(m.w, t, CUDNN_TENSOR_NCHW,
                                                cudnn_dim(g.oc, "num_output"), cudnn_dim(g.c / g.group, "C/group"),
                                                cudnn_dim(g.kh, "kernel_h"), cudnn_dim(g.kw, "kernel_w")));
    COCO_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(m.conv, cudnn_dim(g.ph, "pad_h"), cudnn_dim(g.pw, "pad_w"),
                                                     cudnn_dim(g.sh, "stride_h"), cudnn_dim(g.sw, "stride_w"),
                                                     cudnn_dim(g.dh, "dilation_h"), cudnn_dim(g.dw, "dilation_w"),
                                                     CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    COCO_CUDNN_CHECK(cudnnSetConvolutionGroupCount(m.conv, cudnn_dim(g.group, "group")));
    COCO_CUDNN_CHECK(cudnnSetConvolutionMathType(
        m.conv, precision == Precision::kFP32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
    int n = 0, c = 0, h = 0, w = 0;
    COCO_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(m.conv, m.x, m.w, &n, &c, &h, &w));
    COCO_CHECK(n == g.n && c == g.oc && h == g.oh && w == g.ow, "cuDNN's convolution output ", n, "x", c, "x", h,
               "x", w, " differs from the layer's ", g.n, "x", g.oc, "x", g.oh, "x", g.ow, " (", geometry_str(g), ")");
    m.g = g;
    m.precision = precision;
    m.set = true;
  }
  m.deterministic = det;
  const std::array<int64_t, 6> key{g.n, g.c, g.h, g.w, det ? 1 : 0, static_cast<int64_t>(precision)};
  auto it = m.cache.find(key);
  if (it == m.cache.end()) it = m.cache.emplace(key, m.choose(cuda::cudnn())).first;
  m.cur = &it->second;
}

void CudnnConvolution::forward(float* y, const float* x, const float* w, const float* b, cuda::Stream stream) {
  Impl& m = *impl_;
  COCO_CHECK(m.cur, "CudnnConvolution::forward before set_geometry");
  const Algos& a = *m.cur;
  const float one = 1.f, zero = 0.f;
  void* ws = a.fwd_ws ? cuda::workspace(a.fwd_ws) : nullptr;
  const Precision p = m.precision;
  if (p == Precision::kFP32) {
    COCO_CUDNN_CHECK(cudnnConvolutionForward(cuda::cudnn(), &one, m.x, x, m.w, w, m.conv, a.fwd, ws, a.fwd_ws,
                                             &zero, m.y, y));
  } else {
    const ConvGeometry& g = m.g;
    const int64_t nx = g.n * g.c * g.h * g.w, nw = g.oc * (g.c / g.group) * g.kh * g.kw, ny = g.n * g.oc * g.oh * g.ow;
    HalfScratch xh(nx), wh(nw), yh(ny);
    cuda_to_half(p, nx, x, xh.get(), stream);
    cuda_to_half(p, nw, w, wh.get(), stream);
    COCO_CUDNN_CHECK(cudnnConvolutionForward(cuda::cudnn(), &one, m.x, xh.get(), m.w, wh.get(), m.conv, a.fwd, ws,
                                             a.fwd_ws, &zero, m.y, yh.get()));
    cuda_from_half(p, ny, yh.get(), y, /*accumulate=*/false, stream);
  }
  if (b) add_bias(y, b, m.g.n, m.g.oc, m.g.oh * m.g.ow, stream);
}

void CudnnConvolution::backward(float* dw, float* db, float* dx, const float* x, const float* dy, const float* w,
                                cuda::Stream stream) {
  Impl& m = *impl_;
  COCO_CHECK(m.cur, "CudnnConvolution::backward before set_geometry");
  const Algos& a = *m.cur;
  const float one = 1.f, zero = 0.f;
  if (db) bias_grad(db, dy, m.g.n, m.g.oc, m.g.oh * m.g.ow, stream);
  // One workspace for both calls: they run one after the other on the same stream.
  const size_t ws_bytes = std::max(a.bwd_filter_ws, dx ? a.bwd_data_ws : size_t{0});
  void* ws = ws_bytes ? cuda::workspace(ws_bytes) : nullptr;
  cudnnHandle_t h = cuda::cudnn();
  const Precision p = m.precision;
  if (p == Precision::kFP32) {
    COCO_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, m.x, x, m.y, dy, m.conv, a.bwd_filter, ws,
                                                    a.bwd_filter_ws, &one, m.w, dw));
    if (dx)
      COCO_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, m.w, w, m.y, dy, m.conv, a.bwd_data, ws,
                                                    a.bwd_data_ws, &zero, m.x, dx));
    return;
  }
  // 16-bit operands and results; the weight gradient is added to the fp32 diff
  // after its rounding (the emulation in ConvolutionLayer::backward_reduced).
  const ConvGeometry& g = m.g;
  const int64_t nx = g.n * g.c * g.h * g.w, nw = g.oc * (g.c / g.group) * g.kh * g.kw, ny = g.n * g.oc * g.oh * g.ow;
  HalfScratch xh(nx), wh(nw), dyh(ny), dwh(nw);
  cuda_to_half(p, nx, x, xh.get(), stream);
  cuda_to_half(p, ny, dy, dyh.get(), stream);
  COCO_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, m.x, xh.get(), m.y, dyh.get(), m.conv, a.bwd_filter, ws,
                                                  a.bwd_filter_ws, &zero, m.w, dwh.get()));
  cuda_from_half(p, nw, dwh.get(), dw, /*accumulate=*/true, stream);
  if (!dx) return;
  cuda_to_half(p, nw, w, wh.get(), stream);
  COCO_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, m.w, wh.get(), m.y, dyh.get(), m.conv, a.bwd_data, ws,
                                                a.bwd_data_ws, &zero, m.x, xh.get()));  // x's copy is spent: dx
  cuda_from_half(p, nx, xh.get(), dx, /*accumulate=*/false, stream);
}

std::string CudnnConvolution::describe() const {
  const Impl& m = *impl_;
  if (!m.cur) return "(no geometry set)";
  const Algos& a = *m.cur;
  std::ostringstream os;
  os << "fwd " << static_cast<int>(a.fwd) << " (" << a.fwd_ws << " B), bwd data " << static_cast<int>(a.bwd_data)
     << " (" << a.bwd_data_ws << " B), bwd filter " << static_cast<int>(a.bwd_filter) << " (" << a.bwd_filter_ws
     << " B)" << (m.deterministic ? ", deterministic" : "")
     << (m.precision == Precision::kFP32 ? "" : std::string(", ") + precision_name(m.precision));
  return os.str();
}

}  // namespace coco
