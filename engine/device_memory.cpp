#include "engine/device_memory.h"

#include <cstdlib>
#include <cstring>

#include "engine/common.h"
#include "engine/cuda_runtime.h"

namespace coco {

void* device_alloc(Device dev, size_t bytes) {
  if (bytes == 0) bytes = 64;
  if (dev == Device::kCPU) {
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) COCO_THROW("out of host memory allocating ", bytes, " bytes");
    return p;
  }
  return cuda::allocate(bytes);
}

void device_free(Device dev, void* p) {
  if (!p) return;
  if (dev == Device::kCPU) {
    std::free(p);
    return;
  }
  cuda::deallocate(p);
}

void device_copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
  if (bytes == 0) return;
  if (dst_dev == Device::kCPU && src_dev == Device::kCPU) {
    std::memcpy(dst, src, bytes);
    return;
  }
  cuda::copy(dst, src, bytes, /*wait=*/true);
}

void device_memset_zero(void* p, Device dev, size_t bytes) {
  if (bytes == 0) return;
  if (dev == Device::kCPU) {
    std::memset(p, 0, bytes);
    return;
  }
  cuda::memset_zero(p, bytes);
}

Device pointer_device(const void* p) { return cuda::owns(p) ? Device::kCUDA : Device::kCPU; }

void copy_bytes(void* dst, const void* src, size_t bytes) {
  if (bytes == 0 || dst == src) return;
  const Device d = pointer_device(dst), s = pointer_device(src);
  if (d == Device::kCPU && s == Device::kCPU) {
    std::memmove(dst, src, bytes);
    return;
  }
  // Device-to-device stays on the stream; anything touching the host waits for it.
  cuda::copy(dst, src, bytes, /*wait=*/!(d == Device::kCUDA && s == Device::kCUDA));
}

bool cuda_available() { return cuda::available(); }

}  // namespace coco
