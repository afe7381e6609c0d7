// Device math: the cuBLAS twins of engine/math.h and a few elementwise kernels.
//
// Row-major, the cpu_ functions' signatures plus the stream last, so a layer's CUDA
// path reads like its CPU path and shows which stream orders each call (cuBLAS is
// bound to that stream for the call). Everything returns without waiting, except
// the functions that return a value to the host (dot, asum, count_nonfinite), which
// wait for their own result on that stream. Pointers are device pointers. Without a
// CUDA build every function throws.
#pragma once

#include <cstdint>

#include "engine/cuda_runtime.h"
#include "engine/math.h"
#include "engine/precision.h"

namespace coco {

using cuda::Stream;

void cuda_gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               const float* B, float beta, float* C, Stream s);
// cuda_gemm with op(A) and op(B) rounded to p (BF16 or FP16, ties to even) and the
// products summed in fp32 into fp32 C (cublasGemmEx, CUBLAS_COMPUTE_32F): what
// cpu_gemm_at emulates. FP32 is cuda_gemm itself. The rounded copies come from the
// caching allocator and go back to it when the call returns (stream-ordered).
void cuda_gemm_at(Precision p, Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  const float* B, float beta, float* C, Stream s);
// 16-bit tensors (engine/cuda_half.cu), for cuDNN's half convolutions: y = x rounded
// to p's format (2 bytes per value, bf16 or fp16); and back, y (=, or += when
// accumulate) the 16-bit values as floats.
void cuda_to_half(Precision p, int64_t n, const float* x, void* y, Stream s);
void cuda_from_half(Precision p, int64_t n, const void* x, float* y, bool accumulate, Stream s);
// A scratch of n 16-bit values on the current device (caching allocator), freed on
// scope exit: the compute stream orders its reuse after the kernels that read it.
class HalfScratch {
 public:
  explicit HalfScratch(int64_t n);
  ~HalfScratch();
  HalfScratch(const HalfScratch&) = delete;
  HalfScratch& operator=(const HalfScratch&) = delete;
  void* get() const { return p_; }

 private:
  void* p_ = nullptr;
};
void cuda_gemv(Trans ta, int64_t M, int64_t N, float alpha, const float* A, const float* x,
               float beta, float* y, Stream s);
void cuda_axpy(int64_t n, float alpha, const float* x, float* y, Stream s);  // y += alpha x
void cuda_scale(int64_t n, float alpha, float* x, Stream s);                // x *= alpha
void cuda_set(int64_t n, float value, float* x, Stream s);                  // x[i] = value
void cuda_copy(int64_t n, const float* x, float* y, Stream s);  // y = x (device to device)
double cuda_dot_double(int64_t n, const float* x, const float* y, Stream s);  // to the host, waits
double cuda_asum_double(int64_t n, const float* x, Stream s);  // sum |x|, to the host, waits
// Class ids between the two label types (engine/tensor.h, ElementType): y = x
// (exact below 2^24); and y = x where x is an integer in [0, 2^31), else -1.
void cuda_int32_to_float(int64_t n, const int32_t* x, float* y, Stream s);
void cuda_float_to_int32(int64_t n, const float* x, int32_t* y, Stream s);
// Number of NaN or +-Inf values, and the index of the first (-1 if none); waits.
int64_t cuda_count_nonfinite(int64_t n, const float* x, int64_t* first, Stream s);

// The SGD step of engine/solver.h on one parameter blob (Caffe's rule):
//   v = momentum v + lr (clip g + reg(w)),  w -= v,  reg = decay w (L2) or decay sign(w) (L1).
// The same for the rows rows[r] (floats holding row indices) of w and v (row_size
// floats each), g (n_rows, row_size) holding their gradients in that order.
void cuda_sgd_update_rows(int64_t n_rows, int64_t row_size, const float* rows, float* w, float* v, const float* g,
                          float lr, float momentum, float decay, bool l1, float clip, Stream s);
void cuda_sgd_update(int64_t n, float* w, float* v, const float* g, float lr, float momentum, float decay,
                     bool l1, float clip, Stream s);

}  // namespace coco
