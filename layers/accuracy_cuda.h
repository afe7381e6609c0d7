// Launchers of the Accuracy layer's CUDA kernels (layers/accuracy_layer.cu).
// Device pointers; every launch is issued on `stream` and returns without waiting.
#pragma once

#include <cstdint>

#include "engine/cuda_runtime.h"

namespace coco {

// Unsigned 32-bit counters the launcher needs in device memory (scratch).
inline int64_t accuracy_counter_count(int64_t classes) { return 3 + 2 * classes; }

// accuracy (1 float) = correct / counted over the positions whose label is not
// ignored; per_class (C floats, may be null) = hit_c / seen_c. Scores (outer, C,
// inner), labels (outer * inner). A sample is correct iff fewer than top_k scores
// are strictly greater than its true class's score (Caffe's ties). Nothing counted:
// 0. A label that is neither ignored nor a class id in [0, C) -- where the CPU path
// throws -- makes accuracy and per_class NaN (no host synchronisation to throw from).
// `counters` is scratch of accuracy_counter_count(C) uint32; it is zeroed here.
void accuracy_forward_cuda(float* accuracy, float* per_class, uint32_t* counters, const float* scores,
                           const float* labels, int64_t outer, int64_t classes, int64_t inner, int top_k,
                           bool has_ignore_label, int ignore_label, cuda::Stream stream);

}  // namespace coco
