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

namespace coco {

using cuda::Stream;

void cuda_gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               const float* B, float beta, float* C, Stream s);
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
