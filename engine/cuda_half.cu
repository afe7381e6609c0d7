// 16-bit device tensors (engine/cuda_math.h): the conversions and their scratch --
// the GPU side of the emulation in engine/precision.h (cuda_gemm_at, in
// cuda_math.cu beside cuda_gemm, and cuDNN's 16-bit convolutions read them).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/cuda_check.cuh"
#include "engine/cuda_math.h"
#include "engine/device_memory.h"

namespace coco {

namespace {

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

}  // namespace coco
