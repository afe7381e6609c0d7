// engine/gpu_check.h: one shape for the CUDA runtime, cuBLAS, cuDNN and NCCL checks.
// The formatter runs in every build; the macros where the libraries are (their
// error strings are host-side tables: no GPU needed).
#include <gtest/gtest.h>

#include <string>

#if COCO_WITH_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#endif
#if COCO_WITH_NCCL
#include <nccl.h>
#endif

#include "engine/common.h"
#include "engine/gpu_check.h"
#include "tests/error_of.h"

namespace coco::testing {

TEST(GpuCheck, FailNamesLibraryCallErrorAndPlace) {
  EXPECT_EQ(error_of([] { gpu::fail("cuDNN", "CUDNN_STATUS_BAD_PARAM", "cudnnFoo(x, 1)", "/src/layers/a.cu", 12); }),
            "cuDNN error in cudnnFoo(x, 1): CUDNN_STATUS_BAD_PARAM (a.cu:12)");
}

#if COCO_WITH_CUDA
TEST(GpuCheck, EachMacroEvaluatesItsCallOnceAndThrowsOnFailure) {
  int calls = 0;
  auto cuda_ok = [&] { ++calls; return cudaSuccess; };
  COCO_CUDA_CHECK(cuda_ok());
  EXPECT_EQ(calls, 1);
  auto cuda_bad = [&] { ++calls; return cudaErrorInvalidValue; };
  const std::string cuda = error_of([&] { COCO_CUDA_CHECK(cuda_bad()); });
  EXPECT_EQ(calls, 2);
  EXPECT_NE(cuda.find(std::string("CUDA error in cuda_bad(): ") + cudaGetErrorString(cudaErrorInvalidValue)),
            std::string::npos) << cuda;
  EXPECT_NE(cuda.find("test_error_checks.cpp:"), std::string::npos) << cuda;

  const std::string blas = error_of([] { COCO_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE); });
  EXPECT_NE(blas.find(std::string("cuBLAS error in CUBLAS_STATUS_INVALID_VALUE: ") +
                      cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE)),
            std::string::npos) << blas;
  const std::string dnn = error_of([] { COCO_CUDNN_CHECK(CUDNN_STATUS_BAD_PARAM); });
  EXPECT_NE(dnn.find(std::string("cuDNN error in CUDNN_STATUS_BAD_PARAM: ") +
                     cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM)),
            std::string::npos) << dnn;
  COCO_CUBLAS_CHECK(CUBLAS_STATUS_SUCCESS);
  COCO_CUDNN_CHECK(CUDNN_STATUS_SUCCESS);
  EXPECT_STREQ(gpu::error_string(cudaErrorInvalidValue), cudaGetErrorString(cudaErrorInvalidValue));
}
#endif

#if COCO_WITH_NCCL
TEST(GpuCheck, NcclMacro) {
  COCO_NCCL_CHECK(ncclSuccess);
  const std::string nccl = error_of([] { COCO_NCCL_CHECK(ncclInvalidArgument); });
  EXPECT_NE(nccl.find(std::string("NCCL error in ncclInvalidArgument: ") + ncclGetErrorString(ncclInvalidArgument)),
            std::string::npos) << nccl;
}
#endif

}  // namespace coco::testing
