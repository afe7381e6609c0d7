// The arithmetic precision of convolutions and GEMMs (solver `precision`), and the
// CPU's emulation of the reduced formats.
//
// Why an emulation: the CPU is the oracle every CUDA path is tested against. A
// bf16 or fp16 operation on the GPU (cublasGemmEx, cuDNN on half tensors) reads
// operands rounded to the format and accumulates in fp32; the CPU does the same by
// rounding copies of the operands to the nearest value of the format (ties to
// even, as __float2bfloat16_rn / __float2half_rn) and running its fp32 kernels on
// them. Only the summation order differs between the two, so they agree to fp32
// rounding, not to the format's. On a CPU the emulation costs a copy per operand:
// it is for checking numerics, not for speed.
#pragma once

#include <cstdint>
#include <string>

namespace coco {

enum class Precision { kFP32, kBF16, kFP16 };

const char* precision_name(Precision p);  // "FP32", "BF16", "FP16"
// The inverse of precision_name (the solver's enum spells them alike); false for
// any other name.
bool precision_from_name(const std::string& name, Precision* p);

// x rounded to the nearest value of format p, ties to even: bf16 keeps 8 bits of
// significand and fp32's exponent range; fp16 keeps 11 bits, its largest value is
// 65504 and its smallest 2^-24 (below half of that: zero), so magnitudes from 65520
// up become infinite. NaN stays NaN; FP32 returns x.
float round_to(Precision p, float x);
// out[i] = round_to(p, in[i]); in == out is allowed.
void round_to(Precision p, const float* in, float* out, int64_t n);

}  // namespace coco
