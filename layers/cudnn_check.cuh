// For the .cu files of layers that call cuDNN (convolution, pooling): cudnn.h, then
// engine/gpu_check.h, so COCO_CUDNN_CHECK is there; and cuDNN's int sizes.
// Included by .cu files only.
#pragma once

#include <cudnn.h>

#include "engine/cuda_check.cuh"
#include "engine/gpu_check.h"  // again, after cudnn.h: adds the cuDNN section

namespace coco {
namespace cuda {

// cuDNN's 4-D descriptors take int sizes.
inline int cudnn_dim(int64_t v, const char* what) {
  COCO_CHECK(v >= 0 && v <= 0x7fffffff, what, " = ", v, " does not fit cuDNN's int");
  return static_cast<int>(v);
}

}  // namespace cuda
}  // namespace coco
