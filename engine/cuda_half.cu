// Reduced-precision device math (engine/cuda_math.h): 16-bit conversions, their
// scratch, and cublasGemmEx on rounded operands -- the GPU side of the emulation
// in engine/precision.h.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>

#include "engine/cuda_check.cuh"
#include "engine/cuda_math.h"
#include "engine/device_memory.h"
#include "engine/gpu_check.h"  // after cublas_v2.h: COCO_CUBLAS_CHECK

namespace coco {

namespace {

int gemm_dim(int64_t v, const char* what) {
  COCO_CHECK(v >= 0 && v <= INT_MAX, what, " = ", v, " does not fit cuBLAS's int");
  return static_cast<int>(v);
}

// __float2bfloat16_rn / __float2half_rn: round to nearest, ties to even, as
// round_to() on the CPU (fp16 overflows to infinity from 65520 up).
__global__ void to_bf16_kernel(const float* x, __nv_bfloat16* y, int64_t n) {
  COCO_KERNEL_LOOP(i, n) y[i] = __float2bfloat16_rn(x[i]);
}
__global__ void to_fp16_kernel(const float* x, __half* y, int64_t n) {
  COCO_KERNEL_LOOP(i, n) y[i] = __float2half_rn(x[i]);
}
__global__ void from_bf16_kernel(const __nv_bfloat16* x, float* y, int64_t n, bool accumulate) {
  COCO_KERNEL_LOOP(i, n) y[i] = accumulate ? y[i] + __bfloat162float(x[i]) : __bfloat162float(x[i]);
}
__global__ void from_fp16_kernel(const __half* x, float* y, int64_t n, bool accumulate) {
  COCO_KERNEL_LOOP(i, n) y[i] = accumulate ? y[i] + __half2float(x[i]) : __half2float(x[i]);
}

cudaDataType_t cuda_type(Precision p) { return p == Precision::kBF16 ? CUDA_R_16BF : CUDA_R_16F; }

}  // namespace

HalfScratch::HalfScratch(int64_t n) : p_(n > 0 ? cuda::allocate(static_cast<size_t>(n) * 2) : nullptr) {}
HalfScratch::~HalfScratch() {
  if (p_) cuda::deallocate(p_);
}

void cuda_to_half(Precision p, int64_t n, const float* x, void* y, Stream s) {
  COCO_CHECK(p != Precision::kFP32, "cuda_to_half: FP32 has no 16-bit format");
  if (n == 0) return;
  if (p == Precision::kBF16)
    to_bf16_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, s>>>(x, static_cast<__nv_bfloat16*>(y), n);
  else
    to_fp16_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, s>>>(x, static_cast<__half*>(y), n);
  cuda::check_launch("to_half kernel");
}

void cuda_from_half(Precision p, int64_t n, const void* x, float* y, bool accumulate, Stream s) {
  COCO_CHECK(p != Precision::kFP32, "cuda_from_half: FP32 has no 16-bit format");
  if (n == 0) return;
  if (p == Precision::kBF16)
    from_bf16_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, s>>>(static_cast<const __nv_bfloat16*>(x), y, n,
                                                                      accumulate);
  else
    from_fp16_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, s>>>(static_cast<const __half*>(x), y, n, accumulate);
  cuda::check_launch("from_half kernel");
}

void cuda_gemm_at(Precision p, Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  const float* B, float beta, float* C, Stream s) {
  if (p == Precision::kFP32 || M == 0 || N == 0 || K == 0) {
    cuda_gemm(ta, tb, M, N, K, alpha, A, B, beta, C, s);
    return;
  }
  HalfScratch a(M * K), b(K * N);
  cuda_to_half(p, M * K, A, a.get(), s);
  cuda_to_half(p, K * N, B, b.get(), s);
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  const int lda = gemm_dim(ta == Trans::kNo ? K : M, "lda"), ldb = gemm_dim(tb == Trans::kNo ? N : K, "ldb");
  cublasHandle_t h = cuda::cublas();
  COCO_CUBLAS_CHECK(cublasSetStream(h, s));
  const cudaDataType_t t = cuda_type(p);
  COCO_CUBLAS_CHECK(cublasGemmEx(h, tb == Trans::kNo ? CUBLAS_OP_N : CUBLAS_OP_T,
                                 ta == Trans::kNo ? CUBLAS_OP_N : CUBLAS_OP_T, gemm_dim(N, "N"), gemm_dim(M, "M"),
                                 gemm_dim(K, "K"), &alpha, b.get(), t, ldb, a.get(), t, lda, &beta, C, CUDA_R_32F,
                                 gemm_dim(N, "N"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace coco
