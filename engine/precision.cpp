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

bool precision_from_name(const std::string& name, Precision* p) {
  for (Precision q : {Precision::kFP32, Precision::kBF16, Precision::kFP16})
    if (name == precision_name(q)) {
      *p = q;
      return true;
    }
  return false;
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

// Rounds a float's bit pattern to `drop` fewer significand bits, ties to even: a
// carry out of the significand steps the exponent, which is the right result up to
// infinity. On bits, so that the loops over arrays vectorise.
template <int drop>
inline uint32_t round_low_bits(uint32_t b) {
  constexpr uint32_t half = (1u << (drop - 1)) - 1;
  return (b + half + ((b >> drop) & 1u)) & ~((1u << drop) - 1);
}

constexpr float kHalfMax = 65504.f;
constexpr float kHalfMinNormal = 6.103515625e-05f;  // 2^-14

inline float round_fp16(float x) {
  if (std::isnan(x) || std::isinf(x)) return x;
  const float a = std::fabs(x);
  float r;
  if (a >= kHalfMinNormal) {
    r = float_of(round_low_bits<13>(bits_of(a)));
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

// bf16 has fp32's exponent: only the low 16 bits go. A NaN stays a (quiet) NaN,
// which the bit rounding could otherwise carry into infinity.
inline uint32_t round_bf16_bits(uint32_t b) {
  return (b & 0x7fffffffu) > 0x7f800000u ? b | 0x00400000u : round_low_bits<16>(b);
}

inline float round_bf16(float x) { return float_of(round_bf16_bits(bits_of(x))); }

COCO_CPU_CLONES void round_bf16_n(const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, in + i, 4);
    b = round_bf16_bits(b);
    std::memcpy(out + i, &b, 4);
  }
}

}  // namespace

float round_to(Precision p, float x) {
  switch (p) {
    case Precision::kFP32: return x;
    case Precision::kBF16: return round_bf16(x);
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
