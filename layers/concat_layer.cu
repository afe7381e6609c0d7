// Concat: device copies of the bottoms' slabs. cudaMemcpy2DAsync does a strided copy
// of `rows` rows in one call (a plain copy where the rows are contiguous), ordered on
// the compute stream like any kernel.
#include "engine/cuda_check.cuh"
#include "layers/concat_cuda.h"

namespace coco {

void concat_copy_cuda(float* dst, const float* src, int64_t rows, int64_t len, int64_t dst_stride,
                      int64_t src_stride, cuda::Stream stream) {
  if (rows <= 0 || len <= 0) return;
  if (rows == 1 || (dst_stride == len && src_stride == len)) {
    COCO_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(rows * len) * sizeof(float),
                                    cudaMemcpyDeviceToDevice, stream));
    return;
  }
  COCO_CUDA_CHECK(cudaMemcpy2DAsync(dst, static_cast<size_t>(dst_stride) * sizeof(float), src,
                                    static_cast<size_t>(src_stride) * sizeof(float),
                                    static_cast<size_t>(len) * sizeof(float), static_cast<size_t>(rows),
                                    cudaMemcpyDeviceToDevice, stream));
}

}  // namespace coco
