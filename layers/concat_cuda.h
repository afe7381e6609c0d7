// Launcher of the Concat layer's CUDA copies (layers/concat_layer.cu).
// Device pointers; issued on `stream`, returns without waiting.
#pragma once

#include <cstdint>

#include "engine/cuda_runtime.h"

namespace coco {

// A strided slab copy: for o < rows, dst[o * dst_stride + j] = src[o * src_stride + j],
// j < len (floats). Forward copies a bottom's (outer, len) rows into its slab of the
// top's rows (dst = top + offset, dst_stride = top row); backward the other way.
void concat_copy_cuda(float* dst, const float* src, int64_t rows, int64_t len, int64_t dst_stride,
                      int64_t src_stride, cuda::Stream stream);

}  // namespace coco
