// CPU math: thin, typed wrappers over OpenBLAS (CBLAS) plus a few loops.
//
// Row-major everywhere. gemm computes C = alpha * op(A) * op(B) + beta * C with
// op(A) M x K, op(B) K x N, C M x N. cuBLAS twins arrive with the CUDA backend.
#pragma once

#include <cstdint>

#include "engine/precision.h"

namespace coco {

enum class Trans { kNo, kYes };

void cpu_gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
              const float* B, float beta, float* C);
// cpu_gemm on op(A) and op(B) rounded to p first (engine/precision.h): the CPU's
// emulation of cuda_gemm_at, fp32 products and sums. FP32 is cpu_gemm itself.
void cpu_gemm_at(Precision p, Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 const float* B, float beta, float* C);
// y = alpha * op(A) x + beta * y, A is M x N.
void cpu_gemv(Trans ta, int64_t M, int64_t N, float alpha, const float* A, const float* x,
              float beta, float* y);
void cpu_axpy(int64_t n, float alpha, const float* x, float* y);  // y += alpha x
void cpu_scale(int64_t n, float alpha, float* x);
float cpu_dot(int64_t n, const float* x, const float* y);
double cpu_dot_double(int64_t n, const float* x, const float* y);  // accumulated in double

// Flush denormal floats to zero (FTZ/DAZ) on the calling thread and every OpenMP
// thread. Tiny gradients otherwise hit the slow denormal path of x86 FPUs (5-20x
// slower per operation); deep learning engines commonly run this way.
void set_flush_denormals(bool on);

// Threads used by BLAS and coco's own loops (0: leave as configured).
void set_num_threads(int n);
int num_threads();

}  // namespace coco
