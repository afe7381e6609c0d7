// Raw memory on a device. CPU memory is 64-byte aligned; CUDA memory comes from the
// current device's caching allocator (engine/caching_allocator.h), so the training
// loop does not call cudaMalloc/cudaFree once shapes are stable. CUDA copies and
// memsets are issued on the device's compute stream (engine/cuda_runtime.h), so
// they are ordered with the kernels around them. In a build without CUDA every CUDA
// request throws a clear error: nothing falls back silently.
#pragma once

#include <cstddef>

#include "engine/tensor.h"

namespace coco {

void* device_alloc(Device dev, size_t bytes);
void device_free(Device dev, void* p);
// Copies `bytes` between any two devices; returns when the copy is complete.
void device_copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
// Zeroes memory; on CUDA ordered on the compute stream (no host wait).
void device_memset_zero(void* p, Device dev, size_t bytes);
// Where `p` lives: kCUDA when a device allocator handed it out (any offset), else kCPU.
Device pointer_device(const void* p);
// Copies between pointers of any devices (found by pointer_device); device-to-device
// copies are ordered on the compute stream without a host wait. Overlap is allowed
// on the host only.
void copy_bytes(void* dst, const void* src, size_t bytes);
bool cuda_available();  // a CUDA build with at least one device

namespace cuda {
// The CUDA side of the functions above (engine/cuda_runtime.cpp).
void* allocate(size_t bytes);
void deallocate(void* p);
bool owns(const void* p);
void copy(void* dst, const void* src, size_t bytes, bool wait);
void memset_zero(void* p, size_t bytes);
}  // namespace cuda

}  // namespace coco
