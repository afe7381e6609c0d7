// Split: the gradient sum of its tops. One thread per element adds the tops' diffs in
// top order; their pointers travel in the kernel arguments, kMaxPack at a time (more
// tops: further launches add to the partial sum in dx).
#include <algorithm>

#include "engine/cuda_check.cuh"
#include "layers/split_cuda.h"

namespace coco {

namespace {

constexpr int kMaxPack = 16;

struct Pack {
  const float* g[kMaxPack];
  int count;
};

__global__ void split_sum_kernel(float* dx, Pack p, int64_t n, bool first) {
  COCO_KERNEL_LOOP(i, n) {
    float acc = first ? p.g[0][i] : dx[i];
    for (int t = first ? 1 : 0; t < p.count; ++t) acc += p.g[t][i];
    dx[i] = acc;
  }
}

}  // namespace

void split_backward_cuda(float* dx, const float* const* dys, int64_t tops, int64_t n, cuda::Stream stream) {
  if (n <= 0 || tops <= 0) return;
  for (int64_t begin = 0; begin < tops; begin += kMaxPack) {
    Pack p{};
    p.count = static_cast<int>(std::min<int64_t>(kMaxPack, tops - begin));
    for (int t = 0; t < p.count; ++t) p.g[t] = dys[begin + t];
    split_sum_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, stream>>>(dx, p, n, begin == 0);
    cuda::check_launch("split_sum_kernel");
  }
}

}  // namespace coco
