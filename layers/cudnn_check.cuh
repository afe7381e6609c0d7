// cuDNN's twin of COCO_CUDA_CHECK, for the .cu files of layers that call cuDNN
// (convolution, pooling). Included by .cu files only.
#pragma once

#include <cudnn.h>

#include <string>

#include "engine/cuda_check.cuh"

#define COCO_CUDNN_CHECK(call)                                                                      \
  do {                                                                                              \
    cudnnStatus_t s_ = (call);                                                                      \
    if (s_ != CUDNN_STATUS_SUCCESS)                                                                 \
      ::coco::detail::throw_error(__FILE__, __LINE__, std::string(#call " failed: ") + cudnnGetErrorString(s_)); \
  } while (0)

namespace coco {
namespace cuda {

// cuDNN's 4-D descriptors take int sizes.
inline int cudnn_dim(int64_t v, const char* what) {
  COCO_CHECK(v >= 0 && v <= 0x7fffffff, what, " = ", v, " does not fit cuDNN's int");
  return static_cast<int>(v);
}

}  // namespace cuda
}  // namespace coco
