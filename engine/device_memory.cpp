#include "engine/device_memory.h"

#include <cstdlib>
#include <cstring>

#include "engine/common.h"

#if COCO_WITH_CUDA
#include <cuda_runtime_api.h>
#define COCO_CUDA_CALL(call)                                                            \
  do {                                                                                  \
    cudaError_t e_ = (call);                                                            \
    if (e_ != cudaSuccess)                                                              \
      ::coco::detail::throw_error(__FILE__, __LINE__,                                   \
                                  std::string(#call " failed: ") + cudaGetErrorString(e_)); \
  } while (0)
#endif

namespace coco {

namespace {
[[noreturn]] void no_cuda() {
  COCO_THROW("this coco build has no CUDA backend (configure with COCO_WITH_CUDA=ON)");
}
}  // namespace

void* device_alloc(Device dev, size_t bytes) {
  if (bytes == 0) bytes = 64;
  if (dev == Device::kCPU) {
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) COCO_THROW("out of host memory allocating ", bytes, " bytes");
    return p;
  }
#if COCO_WITH_CUDA
  void* p = nullptr;
  COCO_CUDA_CALL(cudaMalloc(&p, bytes));
  return p;
#else
  no_cuda();
#endif
}

void device_free(Device dev, void* p) {
  if (!p) return;
  if (dev == Device::kCPU) {
    std::free(p);
    return;
  }
#if COCO_WITH_CUDA
  cudaFree(p);
#endif
}

void device_copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
  if (bytes == 0) return;
  if (dst_dev == Device::kCPU && src_dev == Device::kCPU) {
    std::memcpy(dst, src, bytes);
    return;
  }
#if COCO_WITH_CUDA
  COCO_CUDA_CALL(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
#else
  no_cuda();
#endif
}

void device_memset_zero(void* p, Device dev, size_t bytes) {
  if (bytes == 0) return;
  if (dev == Device::kCPU) {
    std::memset(p, 0, bytes);
    return;
  }
#if COCO_WITH_CUDA
  COCO_CUDA_CALL(cudaMemset(p, 0, bytes));
#else
  no_cuda();
#endif
}

bool cuda_available() {
#if COCO_WITH_CUDA
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
#else
  return false;
#endif
}

}  // namespace coco
