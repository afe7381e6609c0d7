// The target logit's margin (CosFace, ArcFace), one definition for the host and
// the device: the CPU bodies of the head and its CUDA kernels include this file,
// so the two paths cannot drift apart (docs/DESIGN.md, "Margins").
//
// Plain C++ with <math.h> functions that nvcc also provides on the device; the
// constants are computed once on the host (make_margin_params), so both paths use
// the same float values.
#pragma once

#include <math.h>

#if defined(__CUDACC__)
#define COCO_HOST_DEVICE __host__ __device__
#else
#define COCO_HOST_DEVICE
#endif

namespace coco {

enum class CocoMarginKind : int { kNone = 0, kCosFace = 1, kArcFace = 2 };

struct CocoMarginParams {
  CocoMarginKind kind = CocoMarginKind::kNone;
  float alpha = 1;       // scale
  float margin = 0;      // m
  float cos_m = 1;       // cos m
  float sin_m = 0;       // sin m
  float threshold = -1;  // cos(pi - m): ArcFace's fallback below it
  float m_sin_m = 0;     // m * sin m (the fallback's offset)
};

inline CocoMarginParams make_margin_params(CocoMarginKind kind, float alpha, float margin) {
  CocoMarginParams p;
  p.kind = kind;
  p.alpha = alpha;
  p.margin = margin;
  p.cos_m = cosf(margin);
  p.sin_m = sinf(margin);
  p.threshold = cosf(static_cast<float>(M_PI) - margin);
  p.m_sin_m = margin * sinf(margin);
  return p;
}

// The target logit z = alpha cos(theta) with its margin.
COCO_HOST_DEVICE inline float apply_margin(float z, const CocoMarginParams& p) {
  switch (p.kind) {
    case CocoMarginKind::kCosFace: return z - p.alpha * p.margin;
    case CocoMarginKind::kArcFace: {
      const float cos_t = fminf(fmaxf(z / p.alpha, -1.f), 1.f);
      if (cos_t > p.threshold) {
        const float sin_t = sqrtf(fmaxf(0.f, 1.f - cos_t * cos_t));
        return p.alpha * (cos_t * p.cos_m - sin_t * p.sin_m);
      }
      return p.alpha * (cos_t - p.m_sin_m);
    }
    default: return z;
  }
}

// d apply_margin(z) / dz, for the backward.
COCO_HOST_DEVICE inline float margin_slope(float z, const CocoMarginParams& p) {
  if (p.kind != CocoMarginKind::kArcFace) return 1.f;
  const float cos_t = fminf(fmaxf(z / p.alpha, -1.f), 1.f);
  if (cos_t <= p.threshold) return 1.f;
  // d cos(theta + m) / d cos(theta) = cos m + sin m * cos(theta) / sin(theta)
  const float sin_t = fmaxf(sqrtf(fmaxf(0.f, 1.f - cos_t * cos_t)), 1e-6f);
  return p.cos_m + p.sin_m * cos_t / sin_t;
}

}  // namespace coco
