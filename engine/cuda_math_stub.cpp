// engine/cuda_math.h in a build without CUDA: every call is an error (no tensor can
// be on a CUDA device there, so reaching one is a bug or a wrong --device).
#include "engine/cuda_math.h"

#if !COCO_WITH_CUDA
#include "engine/common.h"

namespace coco {
namespace {
[[noreturn]] void no_cuda() { COCO_THROW("this coco build has no CUDA backend (configure with COCO_WITH_CUDA=ON)"); }
}  // namespace
void cuda_gemm(Trans, Trans, int64_t, int64_t, int64_t, float, const float*, const float*, float, float*, Stream) { no_cuda(); }
void cuda_gemm_at(Precision, Trans, Trans, int64_t, int64_t, int64_t, float, const float*, const float*, float, float*,
                  Stream) {
  no_cuda();
}
void cuda_to_half(Precision, int64_t, const float*, void*, Stream) { no_cuda(); }
void cuda_from_half(Precision, int64_t, const void*, float*, bool, Stream) { no_cuda(); }
HalfScratch::HalfScratch(int64_t) { no_cuda(); }
HalfScratch::~HalfScratch() = default;
void cuda_gemv(Trans, int64_t, int64_t, float, const float*, const float*, float, float*, Stream) { no_cuda(); }
void cuda_axpy(int64_t, float, const float*, float*, Stream) { no_cuda(); }
void cuda_scale(int64_t, float, float*, Stream) { no_cuda(); }
void cuda_set(int64_t, float, float*, Stream) { no_cuda(); }
void cuda_copy(int64_t, const float*, float*, Stream) { no_cuda(); }
double cuda_dot_double(int64_t, const float*, const float*, Stream) { no_cuda(); }
double cuda_asum_double(int64_t, const float*, Stream) { no_cuda(); }
int64_t cuda_count_nonfinite(int64_t, const float*, int64_t*, Stream) { no_cuda(); }
void cuda_int32_to_float(int64_t, const int32_t*, float*, Stream) { no_cuda(); }
void cuda_float_to_int32(int64_t, const float*, int32_t*, Stream) { no_cuda(); }
void cuda_sgd_update(int64_t, float*, float*, const float*, float, float, float, bool, float, Stream) { no_cuda(); }
void cuda_sgd_update_rows(int64_t, int64_t, const float*, float*, float*, const float*, float, float, float, bool,
                          float, Stream) {
  no_cuda();
}
}  // namespace coco
#endif
