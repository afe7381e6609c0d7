// Raw memory on a device. CPU memory is 64-byte aligned; CUDA memory comes from
// cudaMalloc (a caching allocator arrives with the CUDA backend). In a build
// without CUDA every CUDA request throws a clear error: nothing falls back silently.
#pragma once

#include <cstddef>

#include "engine/tensor.h"

namespace coco {

void* device_alloc(Device dev, size_t bytes);
void device_free(Device dev, void* p);
// Copies `bytes` between any two devices; synchronous.
void device_copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
void device_memset_zero(void* p, Device dev, size_t bytes);
bool cuda_available();  // a CUDA build with at least one device

}  // namespace coco
