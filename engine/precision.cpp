#include "engine/precision.h"

#include <cmath>
#include <cstring>

#include "engine/cpu_clones.h"

namespace coco {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::kFP32: return "FP32";
    case Precision::kBF16: return "BF16";
    case Precision::kFP16: return "FP16";
  }
  return "?";
}

namespace {

uint32_t bits_of(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}

float float_of(uint32_t b) {
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}

// Rounds the significand to keep `drop` fewer low bits, ties to even, on the bit
// pattern: a carry out of the significand steps the exponent, which is the right
// result up to infinity.
inline float round_low_bits(float x, int drop) {
  const uint32_t b = bits_of(x);
  const uint32_t half = (1u << (drop - 1)) - 1, lsb = (b >> drop) & 1u;
  return float_of((b + half + lsb) & ~((1u << drop) - 1));
}

constexpr float kHalfMax = 65504.f;
constexpr float kHalfMinNormal = 6.103515625e-05f;  // 2^-14

inline float round_fp16(float x) {
  if (std::isnan(x) || std::isinf(x)) return x;
  const float a = std::fabs(x);
  float r;
  if (a >= kHalfMinNormal) {
    r = round_low_bits(a, 13);
    if (r > kHalfMax) r = INFINITY;
  } else {
    // Subnormal halves are the multiples of 2^-24 below 2^-14. Next to 0.5 a float's
    // spacing is 2^-24, so the addition rounds a to that grid (ties to even) and
    // the subtraction is exact.
    volatile float shifted = a + 0.5f;  // volatile: no folding of (a + 0.5) - 0.5
    r = shifted - 0.5f;
  }
  return std::copysign(r, x);
}

COCO_CPU_CLONES void round_bf16_n(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, in + i, 4);
    const bool nan = (b & 0x7fffffffu) > 0x7f800000u;
    const uint32_t r = (b + 0x7fffu + ((b >> 16) & 1u)) & 0xffff0000u;
    const uint32_t o = nan ? (b | 0x00400000u) : r;  // a NaN stays a (quiet) NaN
    std::memcpy(out + i, &o, 4);
  }
}

}  // namespace

float round_to(Precision p, float x) {
  switch (p) {
    case Precision::kFP32: return x;
    case Precision::kBF16: {
      float r;
      round_bf16_n(&x, &r, 1);
      return r;
    }
    case Precision::kFP16: return round_fp16(x);
  }
  return x;
}

void round_to(Precision p, const float* in, float* out, int64_t n) {
  if (p == Precision::kBF16) {
    round_bf16_n(in, out, n);
    return;
  }
  if (p == Precision::kFP32) {
    if (in != out) std::memcpy(out, in, sizeof(float) * static_cast<size_t>(n));
    return;
  }
#pragma omp parallel for schedule(static) if (n > (int64_t{1} << 16))
  for (int64_t i = 0; i < n; ++i) out[i] = round_fp16(in[i]);
}

}  // namespace coco
