// The label input as the loss layers read it.
//
// Why: coco's sources fill the label input with int32 class ids, exact to 2^31,
// while Caffe-style inputs (a float blob the caller fills, as the seed's nets
// have) hold float ids, exact only to 2^24. SoftmaxWithLoss, CenterLoss and
// Accuracy, whose class counts stay below 2^24, read floats; the CocoLoss head,
// made for millions of identities, reads int32 ids.
#pragma once

#include <cstdint>
#include <string>

#include "engine/tensor.h"

namespace coco {

// The labels of b as floats: b's own data, or its int32 ids converted into
// scratch (on b's device).
const float* float_labels(const Blob& b, Tensor& scratch);

// The labels of b as int32 ids: b's own data, or its float ids converted into
// scratch (on b's device). A float that is not an integer in [0, 2^31) becomes -1,
// which no class is.
const int32_t* int32_labels(const Blob& b, Tensor& scratch);

// The first of b's first n labels (a CPU blob) that is not a class in [0, K), or -1.
int64_t first_label_outside(const Blob& b, int64_t n, int64_t K);

// Label i of a CPU blob, as written in an error message.
std::string label_str(const Blob& b, int64_t i);

}  // namespace coco
