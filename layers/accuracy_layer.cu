// Accuracy: CUDA kernels. One warp per sample counts the scores strictly greater
// than the true class's; the counts are integers, added with integer atomics, whose
// result does not depend on their order (deterministic). A last kernel divides.
#include <cmath>

#include "engine/cuda_check.cuh"
#include "layers/accuracy_cuda.h"

namespace coco {

namespace {

constexpr int kWarp = 32;
constexpr int kBlock = 256;  // 8 warps: 8 samples per block
// counters[]: [0] counted, [1] correct, [2] bad labels, [3, 3 + C) seen, [3 + C, 3 + 2C) hit.
constexpr int kCounted = 0, kCorrect = 1, kBad = 2, kSeen = 3;

__global__ void accuracy_count_kernel(uint32_t* counters, const float* scores, const float* labels, int64_t outer,
                                      int64_t classes, int64_t inner, int top_k, bool has_ignore, int ignore) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kBlock / kWarp);
  const int64_t positions = outer * inner;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * (kBlock / kWarp) + threadIdx.x / kWarp; q < positions;
       q += warps) {  // warp-uniform loop
    const float lf = labels[q];
    // The CPU path's checks: y = (int64) lf; ignored if y == ignore_label; else lf
    // must equal y and lie in [0, C). |lf| < 2^62 keeps the conversion defined.
    const bool convertible = fabsf(lf) < 4.6e18f;  // false for NaN and +-Inf
    const long long y = convertible ? static_cast<long long>(lf) : 0;
    if (has_ignore && convertible && y == ignore) continue;
    if (!convertible || lf != static_cast<float>(y) || y < 0 || y >= classes) {
      if (lane == 0) atomicAdd(counters + kBad, 1u);
      continue;
    }
    const int64_t o = q / inner, j = q % inner;
    const float* s = scores + o * classes * inner + j;  // class c at s[c * inner]
    const float truth = s[y * inner];
    unsigned greater = 0;
    for (int64_t c = lane; c < classes; c += kWarp) greater += s[c * inner] > truth;
    for (int off = kWarp / 2; off > 0; off /= 2) greater += __shfl_xor_sync(0xffffffffu, greater, off);
    if (lane == 0) {
      const bool hit = greater < static_cast<unsigned>(top_k);
      atomicAdd(counters + kCounted, 1u);
      atomicAdd(counters + kSeen + y, 1u);
      if (hit) {
        atomicAdd(counters + kCorrect, 1u);
        atomicAdd(counters + kSeen + classes + y, 1u);
      }
    }
  }
}

// Thread c < C writes per_class[c]; thread C writes the accuracy. Float division of
// the counts converted to float, as the CPU path.
__global__ void accuracy_finish_kernel(float* accuracy, float* per_class, const uint32_t* counters,
                                       int64_t classes) {
  const bool bad = counters[kBad] != 0;
  COCO_KERNEL_LOOP(c, classes + 1) {
    if (c == classes) {
      const uint32_t counted = counters[kCounted];
      accuracy[0] = bad ? NAN
                        : (counted == 0 ? 0.0f
                                        : static_cast<float>(counters[kCorrect]) / static_cast<float>(counted));
    } else if (per_class != nullptr) {
      const uint32_t seen = counters[kSeen + c], hit = counters[kSeen + classes + c];
      per_class[c] = bad ? NAN : (seen == 0 ? 0.0f : static_cast<float>(hit) / static_cast<float>(seen));
    }
  }
}

}  // namespace

void accuracy_forward_cuda(float* accuracy, float* per_class, uint32_t* counters, const float* scores,
                           const float* labels, int64_t outer, int64_t classes, int64_t inner, int top_k,
                           bool has_ignore_label, int ignore_label, cuda::Stream stream) {
  COCO_CUDA_CHECK(cudaMemsetAsync(counters, 0, sizeof(uint32_t) * accuracy_counter_count(classes), stream));
  const int64_t positions = outer * inner;
  if (positions > 0) {
    const int64_t per_block = kBlock / kWarp;
    int64_t blocks = (positions + per_block - 1) / per_block;
    if (blocks > 65535 * 16) blocks = 65535 * 16;
    accuracy_count_kernel<<<static_cast<unsigned>(blocks), kBlock, 0, stream>>>(
        counters, scores, labels, outer, classes, inner, top_k, has_ignore_label, ignore_label);
    cuda::check_launch("accuracy_count_kernel");
  }
  accuracy_finish_kernel<<<cuda::blocks_for(classes + 1), cuda::kThreads, 0, stream>>>(accuracy, per_class,
                                                                                         counters, classes);
  cuda::check_launch("accuracy_finish_kernel");
}

}  // namespace coco
