// The epsilon every L2 normalisation adds inside its square root:
// x̂ = x / sqrt(||x||² + eps) (docs/DESIGN.md, "Conventions"). One value for the
// COCO head, Normalize, CenterProjection and the embedding export, so a
// normalised feature means the same thing everywhere; small enough to leave any
// real feature's norm unchanged in float, large enough to keep a zero row finite.
#pragma once

namespace coco {

inline constexpr double kNormEpsilon = 1e-12;

}  // namespace coco
