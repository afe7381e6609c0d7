// One error check for the GPU libraries coco calls: the CUDA runtime, cuBLAS,
// cuDNN and NCCL.
//
//   COCO_CUDA_CHECK(cudaMemcpyAsync(...));      // cudaError_t
//   COCO_CUBLAS_CHECK(cublasSgemm(...));        // cublasStatus_t
//   COCO_CUDNN_CHECK(cudnnConvolutionForward(...));  // cudnnStatus_t
//   COCO_NCCL_CHECK(ncclAllReduce(...));        // ncclResult_t
//
// Each macro evaluates its call once; on failure it throws coco::Error
// "<library> error in <call>: <the library's error string> (file:line)". The
// status type is part of the macro: a cuDNN call under COCO_CUDA_CHECK does not
// compile. gpu::error_string(status) gives the same string for messages of one's
// own (e.g. asynchronous errors found later).
//
// Why the sections below: this header includes no CUDA header, so a file pays only
// for the libraries it uses. Each library's section appears once that library's
// header has been included (include this header AFTER cuda_runtime_api.h,
// cublas_v2.h, cudnn.h or nccl.h); a library used before its section exists fails
// to compile with gpu::Library<...> incomplete. The sections have their own guards,
// so including this header again after another library header adds its section.

#ifndef COCO_ENGINE_GPU_CHECK_H_
#define COCO_ENGINE_GPU_CHECK_H_

namespace coco {
namespace gpu {

// Throws coco::Error "<library> error in <call>: <error> (file:line)". The one
// formatter of every check (engine/gpu_check.cpp).
[[noreturn]] void fail(const char* library, const char* error, const char* call, const char* file, int line);

// Per status type: the library's name, success test and error string (the sections).
template <typename Status>
struct Library;

template <typename Status>
inline void check(Status s, const char* call, const char* file, int line) {
  if (!Library<Status>::ok(s)) fail(Library<Status>::name, Library<Status>::error(s), call, file, line);
}

template <typename Status>
inline const char* error_string(Status s) {
  return Library<Status>::error(s);
}

}  // namespace gpu
}  // namespace coco

#define COCO_GPU_CHECK_AS(Status, call) ::coco::gpu::check<Status>((call), #call, __FILE__, __LINE__)
#define COCO_CUDA_CHECK(call) COCO_GPU_CHECK_AS(cudaError_t, call)
#define COCO_CUBLAS_CHECK(call) COCO_GPU_CHECK_AS(cublasStatus_t, call)
#define COCO_CUDNN_CHECK(call) COCO_GPU_CHECK_AS(cudnnStatus_t, call)
#define COCO_NCCL_CHECK(call) COCO_GPU_CHECK_AS(ncclResult_t, call)

#endif  // COCO_ENGINE_GPU_CHECK_H_

// ---- CUDA runtime (cuda_runtime_api.h; every .cu file has it) ----
#if defined(CUDART_VERSION) && !defined(COCO_GPU_CHECK_CUDART_)
#define COCO_GPU_CHECK_CUDART_
namespace coco {
namespace gpu {
template <>
struct Library<cudaError_t> {
  static constexpr const char* name = "CUDA";
  static bool ok(cudaError_t s) { return s == cudaSuccess; }
  static const char* error(cudaError_t s) { return cudaGetErrorString(s); }
};
}  // namespace gpu
}  // namespace coco
#endif

// ---- cuBLAS (cublas_v2.h) ----
#if defined(CUBLAS_VER_MAJOR) && !defined(COCO_GPU_CHECK_CUBLAS_)
#define COCO_GPU_CHECK_CUBLAS_
namespace coco {
namespace gpu {
template <>
struct Library<cublasStatus_t> {
  static constexpr const char* name = "cuBLAS";
  static bool ok(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS; }
  static const char* error(cublasStatus_t s) { return cublasGetStatusString(s); }
};
}  // namespace gpu
}  // namespace coco
#endif

// ---- cuDNN (cudnn.h) ----
#if defined(CUDNN_MAJOR) && !defined(COCO_GPU_CHECK_CUDNN_)
#define COCO_GPU_CHECK_CUDNN_
namespace coco {
namespace gpu {
template <>
struct Library<cudnnStatus_t> {
  static constexpr const char* name = "cuDNN";
  static bool ok(cudnnStatus_t s) { return s == CUDNN_STATUS_SUCCESS; }
  static const char* error(cudnnStatus_t s) { return cudnnGetErrorString(s); }
};
}  // namespace gpu
}  // namespace coco
#endif

// ---- NCCL (nccl.h) ----
#if defined(NCCL_MAJOR) && !defined(COCO_GPU_CHECK_NCCL_)
#define COCO_GPU_CHECK_NCCL_
namespace coco {
namespace gpu {
template <>
struct Library<ncclResult_t> {
  static constexpr const char* name = "NCCL";
  static bool ok(ncclResult_t s) { return s == ncclSuccess; }
  static const char* error(ncclResult_t s) { return ncclGetErrorString(s); }
};
}  // namespace gpu
}  // namespace coco
#endif
