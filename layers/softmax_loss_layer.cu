// SoftmaxWithLoss: CUDA kernels. One warp per position computes its softmax (the
// sum of exponentials in double, as the CPU path) and its loss; one block then sums
// the positions' losses in a fixed order (cub::BlockReduce with a fixed block size)
// and writes the loss to the device top: deterministic, no float atomics.
#include <cub/block/block_reduce.cuh>

#include <cmath>

#include "engine/cuda_check.cuh"
#include "layers/softmax_loss_cuda.h"

namespace coco {

namespace {

constexpr int kWarp = 32;
constexpr int kBlock = 256;        // softmax: 8 warps, 8 positions per block
constexpr int kReduceBlock = 512;  // the loss reduction: one block

// Warp-uniform position loop: all 32 lanes take part in the shuffles.
__global__ void softmax_loss_forward_kernel(float* prob, double* pos_loss, int32_t* status, const float* z,
                                            const float* labels, int64_t outer, int64_t classes, int64_t inner,
                                            bool has_ignore, int ignore) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kBlock / kWarp);
  const int64_t positions = outer * inner;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * (kBlock / kWarp) + threadIdx.x / kWarp; q < positions;
       q += warps) {
    const int64_t o = q / inner, in = q % inner;
    const float* zq = z + o * classes * inner + in;  // class k at zq[k * inner]
    float* pq = prob + o * classes * inner + in;
    float m = -INFINITY;
    for (int64_t k = lane; k < classes; k += kWarp) m = fmaxf(m, zq[k * inner]);
    for (int off = kWarp / 2; off > 0; off /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    double s = 0;
    for (int64_t k = lane; k < classes; k += kWarp) {
      const float e = expf(zq[k * inner] - m);
      pq[k * inner] = e;
      s += e;
    }
    for (int off = kWarp / 2; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
    const float inv = static_cast<float>(1.0 / s);
    for (int64_t k = lane; k < classes; k += kWarp) pq[k * inner] *= inv;  // this lane's own writes
    if (lane == 0) {
      // The CPU path's label rules: ignored iff label == (float) ignore_label;
      // otherwise a class id in [0, C).
      const float l = labels[q];
      int32_t st = kSoftmaxValid;
      double loss = 0;
      if (has_ignore && l == static_cast<float>(ignore)) {
        st = kSoftmaxIgnored;
      } else if (!(l >= 0 && l < static_cast<float>(classes)) || l != floorf(l)) {
        st = kSoftmaxBadLabel;
      } else {
        const float zt = zq[static_cast<int64_t>(l) * inner];
        loss = log(s) - static_cast<double>(zt - m);
      }
      status[q] = st;
      pos_loss[q] = loss;
    }
  }
}

// One block: total = sum of pos_loss, valid = count of valid positions, any bad.
__global__ void softmax_loss_reduce_kernel(float* loss, double* normalizer, const double* pos_loss,
                                           const int32_t* status, int64_t positions, bool valid_normalization,
                                           double fixed_normalizer) {
  using SumD = cub::BlockReduce<double, kReduceBlock>;
  using SumI = cub::BlockReduce<long long, kReduceBlock>;
  __shared__ typename SumD::TempStorage tmp_d;
  __shared__ typename SumI::TempStorage tmp_i;
  double total = 0;
  long long valid = 0, bad = 0;
  for (int64_t q = threadIdx.x; q < positions; q += kReduceBlock) {
    total += pos_loss[q];
    valid += status[q] == kSoftmaxValid;
    bad += status[q] == kSoftmaxBadLabel;
  }
  total = SumD(tmp_d).Sum(total);
  valid = SumI(tmp_i).Sum(valid);
  __syncthreads();  // tmp_i is reused
  bad = SumI(tmp_i).Sum(bad);
  if (threadIdx.x == 0) {
    double n = valid_normalization ? static_cast<double>(valid) : fixed_normalizer;
    n = n < 1.0 ? 1.0 : n;  // as the CPU path: an all-ignored batch gives 0, not NaN
    normalizer[0] = n;
    loss[0] = bad != 0 ? NAN : static_cast<float>(total / n);
  }
}

// dz[o, k, in] = w (p - [k == label]) at valid positions, 0 elsewhere,
// w = (float) (top_diff / normalizer) as the CPU path.
__global__ void softmax_loss_backward_kernel(float* dz, const float* prob, const float* labels,
                                             const int32_t* status, const float* top_diff, const double* normalizer,
                                             int64_t outer, int64_t classes, int64_t inner) {
  const float w = static_cast<float>(static_cast<double>(top_diff[0]) / normalizer[0]);
  COCO_KERNEL_LOOP(e, outer * classes * inner) {
    const int64_t in = e % inner, k = (e / inner) % classes, o = e / (inner * classes);
    const int64_t q = o * inner + in;
    if (status[q] != kSoftmaxValid) {
      dz[e] = 0;
    } else {
      const int64_t l = static_cast<int64_t>(labels[q]);
      dz[e] = w * (prob[e] - (k == l ? 1.0f : 0.0f));
    }
  }
}

}  // namespace

void softmax_loss_forward_cuda(float* loss, float* prob, double* pos_loss, int32_t* status, double* normalizer,
                               const float* z, const float* labels, int64_t outer, int64_t classes, int64_t inner,
                               bool has_ignore_label, int ignore_label, bool valid_normalization,
                               double fixed_normalizer, cuda::Stream stream) {
  const int64_t positions = outer * inner;
  if (positions > 0) {
    const int64_t per_block = kBlock / kWarp;
    int64_t blocks = (positions + per_block - 1) / per_block;
    if (blocks > 65535 * 16) blocks = 65535 * 16;
    softmax_loss_forward_kernel<<<static_cast<unsigned>(blocks), kBlock, 0, stream>>>(
        prob, pos_loss, status, z, labels, outer, classes, inner, has_ignore_label, ignore_label);
    cuda::check_launch("softmax_loss_forward_kernel");
  }
  softmax_loss_reduce_kernel<<<1, kReduceBlock, 0, stream>>>(loss, normalizer, pos_loss, status, positions,
                                                              valid_normalization, fixed_normalizer);
  cuda::check_launch("softmax_loss_reduce_kernel");
}

void softmax_loss_backward_cuda(float* dz, const float* prob, const float* labels, const int32_t* status,
                                const float* top_diff, const double* normalizer, int64_t outer, int64_t classes,
                                int64_t inner, cuda::Stream stream) {
  const int64_t count = outer * classes * inner;
  if (count <= 0) return;
  softmax_loss_backward_kernel<<<cuda::blocks_for(count), cuda::kThreads, 0, stream>>>(
      dz, prob, labels, status, top_diff, normalizer, outer, classes, inner);
  cuda::check_launch("softmax_loss_backward_kernel");
}

}  // namespace coco
