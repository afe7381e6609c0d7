#include "engine/cuda_runtime.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/caching_allocator.h"
#include "engine/common.h"
#include "engine/device_memory.h"
#include "engine/device_wait.h"

#if COCO_WITH_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "engine/gpu_check.h"
#endif

namespace coco {
namespace cuda {

namespace {
std::atomic<bool> g_deterministic{false};
}

void set_deterministic(bool on) { g_deterministic = on; }
bool deterministic() { return g_deterministic; }

#if COCO_WITH_CUDA

namespace {

// One per device, created on first use and never destroyed: tensors held by static
// objects may be freed after main returns, and the driver releases everything at exit.
struct Context {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  cudnnHandle_t dnn = nullptr;
  std::unique_ptr<CachingAllocator> alloc;
  void* ws = nullptr;
  size_t ws_bytes = 0;
};

std::mutex g_mu;
// Leaked with the contexts: a tensor freed during static destruction still finds them.
std::vector<Context*>& g_contexts = *new std::vector<Context*>;
thread_local int t_device = -1;

Context* make_context(int device) {
  auto* c = new Context;
  c->device = device;
  COCO_CUDA_CHECK(cudaSetDevice(device));
  COCO_CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
  const cublasStatus_t b = cublasCreate(&c->blas);
  if (b != CUBLAS_STATUS_SUCCESS)
    COCO_THROW("cuBLAS: cannot create a handle on cuda:", device, ": ", gpu::error_string(b));
  COCO_CUBLAS_CHECK(cublasSetStream(c->blas, c->stream));
  const cudnnStatus_t s = cudnnCreate(&c->dnn);
  if (s != CUDNN_STATUS_SUCCESS)
    COCO_THROW("cuDNN: cannot create a handle on cuda:", device, ": ", gpu::error_string(s));
  COCO_CUDNN_CHECK(cudnnSetStream(c->dnn, c->stream));
  c->alloc = std::make_unique<CachingAllocator>(
      [device](size_t bytes) -> void* {
        void* p = nullptr;
        cudaSetDevice(device);
        if (cudaMalloc(&p, bytes) != cudaSuccess) {
          cudaGetLastError();  // clear the sticky-free error so the retry can succeed
          return nullptr;
        }
        return p;
      },
      [device](void* p) {
        cudaSetDevice(device);
        cudaFree(p);
      });
  return c;
}

Context& ctx() {
  if (t_device < 0) set_device(0);
  std::lock_guard<std::mutex> lock(g_mu);
  return *g_contexts[t_device];
}

}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

bool available() { return device_count() > 0; }

int compute_capability() {
  int major = 0, minor = 0;
  const int dev = current_device();
  COCO_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  COCO_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  return 10 * major + minor;
}

void set_device(int index) {
  const int n = device_count();
  if (index < 0 || index >= n)
    COCO_THROW("cuda:", index, " does not exist: this machine has ", n, " CUDA device(s)");
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_contexts.size() < static_cast<size_t>(n)) g_contexts.resize(n, nullptr);
  if (!g_contexts[index]) g_contexts[index] = make_context(index);
  COCO_CUDA_CHECK(cudaSetDevice(index));
  t_device = index;
}

int current_device() {
  if (t_device < 0) set_device(0);
  return t_device;
}

Stream stream() { return ctx().stream; }
cublasContext* cublas() { return ctx().blas; }
cudnnContext* cudnn() { return ctx().dnn; }

void* workspace(size_t bytes) {
  Context& c = ctx();
  if (bytes > c.ws_bytes) {
    if (c.ws) c.alloc->deallocate(c.ws);
    c.ws = c.alloc->allocate(bytes);
    c.ws_bytes = CachingAllocator::round_size(bytes);
  }
  return c.ws;
}

void wait(Stream s, const std::string& what) {
  wait_until(
      [&] {
        const cudaError_t e = cudaStreamQuery(s);
        if (e == cudaErrorNotReady) return false;
        if (e != cudaSuccess) COCO_THROW(what, ": CUDA error: ", gpu::error_string(e));
        return true;
      },
      what);
}

void synchronize(const std::string& what) {
  wait(ctx().stream, what);
  const cudaError_t last = cudaGetLastError();
  if (last != cudaSuccess) COCO_THROW(what, ": CUDA error: ", gpu::error_string(last));
}

void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) COCO_THROW("CUDA kernel ", what, " failed to launch: ", gpu::error_string(e));
}

MemoryStats memory_stats() {
  const auto s = ctx().alloc->stats();
  MemoryStats m;
  m.in_use = s.in_use;
  m.cached = s.cached;
  m.peak_in_use = s.peak_in_use;
  m.device_allocs = s.backend_allocs;
  m.device_frees = s.backend_frees;
  return m;
}

void empty_cache() { ctx().alloc->release_cache(); }
void reset_peak_memory_stats() { ctx().alloc->reset_peak(); }

// ---- the device_memory entry points for CUDA (engine/device_memory.cpp calls these) ----
void* allocate(size_t bytes) { return ctx().alloc->allocate(bytes); }

bool owns(const void* p) {
  std::lock_guard<std::mutex> lock(g_mu);  // the allocators' own locks nest inside, never around
  for (Context* c : g_contexts)
    if (c && c->alloc->owns(p)) return true;
  return false;
}

void deallocate(void* p) {
  std::lock_guard<std::mutex> lock(g_mu);
  for (Context* c : g_contexts)
    if (c && c->alloc->owns(p)) {
      c->alloc->deallocate(p);
      return;
    }
  COCO_CHECK(false, "freeing a CUDA pointer no device's allocator handed out");
}

void copy(void* dst, const void* src, size_t bytes, bool wait) {
  Context& c = ctx();
  COCO_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, c.stream));
  if (wait) cuda::wait(c.stream, "a copy from the device");
}

void memset_zero(void* p, size_t bytes) { COCO_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, ctx().stream)); }

#else  // no CUDA backend in this build

namespace {
[[noreturn]] void no_cuda() { COCO_THROW("this coco build has no CUDA backend (configure with COCO_WITH_CUDA=ON)"); }
}  // namespace

int device_count() { return 0; }
bool available() { return false; }
int compute_capability() { no_cuda(); }
void set_device(int) { no_cuda(); }
int current_device() { no_cuda(); }
Stream stream() { no_cuda(); }
cublasContext* cublas() { no_cuda(); }
cudnnContext* cudnn() { no_cuda(); }
void* workspace(size_t) { no_cuda(); }
void wait(Stream, const std::string&) {}
void synchronize(const std::string&) {}
void check_launch(const char*) { no_cuda(); }
MemoryStats memory_stats() { return {}; }
void empty_cache() {}
void reset_peak_memory_stats() {}
void* allocate(size_t) { no_cuda(); }
bool owns(const void*) { return false; }
void deallocate(void*) { no_cuda(); }
void copy(void*, const void*, size_t, bool) { no_cuda(); }
void memset_zero(void*, size_t) { no_cuda(); }

#endif

}  // namespace cuda
}  // namespace coco
