// Parameter initialisation (Caffe's fillers): constant, gaussian, uniform, xavier, msra.
// fan_in = count / shape[0], fan_out = count / shape[1] (Caffe's convention).
#pragma once

#include "engine/proto_fwd.h"
#include "engine/rng.h"
#include "engine/tensor.h"

namespace coco {

void fill(const proto::FillerParameter& p, Tensor& t, Rng& rng);

}  // namespace coco
