// The CUDA runtime coco's layers share: per device one compute stream, one cuBLAS
// and one cuDNN handle bound to it, a grow-only workspace, and the switch for
// deterministic algorithms (debug mode).
//
// Why one stream: every kernel, cuBLAS and cuDNN call of a device is issued on
// stream(), so they are ordered without host synchronisation; the caching
// allocator can then hand a freed block to the next request at once (the stream
// orders the old use before the new one). NCCL runs on its own stream, ordered
// against stream() by events (comm/nccl_communicator.cpp).
//
// This header includes no CUDA header: C++ files that only pass handles around
// compile without the toolkit. In a build without CUDA every function that needs a
// device throws a clear coco::Error; available() is false.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

struct CUstream_st;   // cudaStream_t is CUstream_st*
struct cublasContext;  // cublasHandle_t is cublasContext*
struct cudnnContext;   // cudnnHandle_t is cudnnContext*

namespace coco {
namespace cuda {

using Stream = CUstream_st*;

// A CUDA build with at least one visible device.
bool available();
int device_count();
// Selects the device for this thread and creates its context on first use
// (stream, handles). Throws if the index is out of range.
void set_device(int index);
int current_device();
// The current device's compute capability as 10 * major + minor (90: Hopper).
int compute_capability();

// The current device's compute stream and handles (bound to that stream).
Stream stream();
cublasContext* cublas();
cudnnContext* cudnn();
// Scratch of at least `bytes` on the current device, grown and never shrunk; valid
// until the next call (one user at a time: a layer's forward or backward).
void* workspace(size_t bytes);

// Waits for stream `s` through wait_until (engine/device_wait.h: the NCCL watch
// bounds it) and throws a coco::Error naming `what` on a CUDA error. Every host
// wait on a stream goes through here.
void wait(Stream s, const std::string& what);
// wait() on the current device's stream, then throws a coco::Error naming `what`
// on any pending CUDA error (asynchronous kernel faults included).
void synchronize(const std::string& what = "CUDA stream");
// After a kernel launch: throws a coco::Error naming `what` if the launch failed.
void check_launch(const char* what);

// Debug mode: cuDNN and coco's kernels pick deterministic algorithms only, so two
// runs give bit-identical results.
void set_deterministic(bool on);
bool deterministic();

// Memory of the caching allocator on the current device (bytes).
struct MemoryStats {
  int64_t in_use = 0;      // handed out to tensors
  int64_t cached = 0;      // free blocks kept for reuse
  int64_t peak_in_use = 0;
  int64_t device_allocs = 0;  // cudaMalloc calls so far
  int64_t device_frees = 0;   // cudaFree calls so far
};
MemoryStats memory_stats();
// Starts a new peak_in_use measurement from the bytes in use now.
void reset_peak_memory_stats();
// Returns every cached free block to the driver.
void empty_cache();

}  // namespace cuda
}  // namespace coco
