// Eltwise: CUDA kernels. One thread per element; the bottoms' pointers travel in the
// kernel arguments, kMaxPack at a time (more bottoms: several launches, each going on
// from the previous one's partial result in y / dx). Every element is combined in
// bottom order with the CPU path's operations, rounded the same way (__fmul_rn /
// __fadd_rn keep nvcc from fusing them into an FMA the CPU does not do), so the
// results are bit-identical to the CPU's.
#include <algorithm>

#include "engine/cuda_check.cuh"
#include "layers/eltwise_cuda.h"

namespace coco {

namespace {

constexpr int kMaxPack = 16;

struct Pack {
  const float* x[kMaxPack];
  float coeff[kMaxPack];
  int count;
};

Pack make_pack(const float* const* xs, const float* coeff, int64_t begin, int64_t end) {
  Pack p{};
  p.count = static_cast<int>(end - begin);
  for (int64_t b = begin; b < end; ++b) {
    p.x[b - begin] = xs[b];
    p.coeff[b - begin] = coeff ? coeff[b] : 1.0f;
  }
  return p;
}

// acc = first ? 0 : y; acc += coeff_b * x_b in order.
__global__ void eltwise_sum_kernel(float* y, Pack p, int64_t n, bool first) {
  COCO_KERNEL_LOOP(i, n) {
    float acc = first ? 0.0f : y[i];
    for (int b = 0; b < p.count; ++b) acc = __fadd_rn(acc, __fmul_rn(p.coeff[b], p.x[b][i]));
    y[i] = acc;
  }
}

// acc = first ? x_0 : y; acc *= x_b for the others in order.
__global__ void eltwise_prod_kernel(float* y, Pack p, int64_t n, bool first) {
  COCO_KERNEL_LOOP(i, n) {
    float acc = first ? p.x[0][i] : y[i];
    for (int b = first ? 1 : 0; b < p.count; ++b) acc = __fmul_rn(acc, p.x[b][i]);
    y[i] = acc;
  }
}

// The running maximum and its bottom index; strictly greater wins, so ties keep the
// first bottom. `base` is the index of the pack's first bottom.
__global__ void eltwise_max_kernel(float* y, float* argmax, Pack p, int64_t n, int base) {
  COCO_KERNEL_LOOP(i, n) {
    const bool first = base == 0;
    float best = first ? p.x[0][i] : y[i];
    int who = first ? 0 : static_cast<int>(argmax[i]);
    for (int b = first ? 1 : 0; b < p.count; ++b) {
      const float v = p.x[b][i];
      if (v > best) best = v, who = base + b;
    }
    y[i] = best;
    argmax[i] = static_cast<float>(who);
  }
}

__global__ void eltwise_scale_kernel(float* dx, const float* dy, int64_t n, float c) {
  COCO_KERNEL_LOOP(i, n) dx[i] = __fmul_rn(c, dy[i]);
}

// acc = first ? 1 : dx; acc *= x_b for the pack's bottoms but `skip` (-1: none);
// the last pack multiplies by dy (the CPU's dy * prod).
__global__ void eltwise_prod_grad_kernel(float* dx, const float* dy, Pack p, int64_t n, int skip, bool first,
                                         bool last) {
  COCO_KERNEL_LOOP(i, n) {
    float acc = first ? 1.0f : dx[i];
    for (int b = 0; b < p.count; ++b)
      if (b != skip) acc = __fmul_rn(acc, p.x[b][i]);
    dx[i] = last ? __fmul_rn(dy[i], acc) : acc;
  }
}

// Caffe's fast variant: dy * y / x_k (wrong where x_k == 0, as on the CPU).
__global__ void eltwise_prod_grad_fast_kernel(float* dx, const float* dy, const float* y, const float* xk,
                                              int64_t n) {
  COCO_KERNEL_LOOP(i, n) dx[i] = __fdiv_rn(__fmul_rn(dy[i], y[i]), xk[i]);
}

__global__ void eltwise_max_grad_kernel(float* dx, const float* dy, const float* argmax, int64_t n, int k) {
  COCO_KERNEL_LOOP(i, n) dx[i] = static_cast<int>(argmax[i]) == k ? dy[i] : 0.0f;
}

}  // namespace

void eltwise_forward_cuda(float* y, float* argmax, const float* const* xs, const float* coeff, int64_t bottoms,
                          int64_t n, EltwiseCudaOp op, cuda::Stream stream) {
  if (n <= 0 || bottoms <= 0) return;
  const unsigned blocks = cuda::blocks_for(n);
  for (int64_t begin = 0; begin < bottoms; begin += kMaxPack) {
    const Pack p = make_pack(xs, coeff, begin, std::min<int64_t>(begin + kMaxPack, bottoms));
    const bool first = begin == 0;
    switch (op) {
      case EltwiseCudaOp::kSum:
        eltwise_sum_kernel<<<blocks, cuda::kThreads, 0, stream>>>(y, p, n, first);
        cuda::check_launch("eltwise_sum_kernel");
        break;
      case EltwiseCudaOp::kProd:
        eltwise_prod_kernel<<<blocks, cuda::kThreads, 0, stream>>>(y, p, n, first);
        cuda::check_launch("eltwise_prod_kernel");
        break;
      case EltwiseCudaOp::kMax:
        eltwise_max_kernel<<<blocks, cuda::kThreads, 0, stream>>>(y, argmax, p, n, static_cast<int>(begin));
        cuda::check_launch("eltwise_max_kernel");
        break;
    }
  }
}

void eltwise_backward_cuda(float* dx, const float* dy, const float* y, const float* argmax,
                           const float* const* xs, int64_t bottoms, int64_t k, int64_t n, EltwiseCudaOp op,
                           float coeff_k, bool stable_prod_grad, cuda::Stream stream) {
  if (n <= 0) return;
  const unsigned blocks = cuda::blocks_for(n);
  switch (op) {
    case EltwiseCudaOp::kSum:
      eltwise_scale_kernel<<<blocks, cuda::kThreads, 0, stream>>>(dx, dy, n, coeff_k);
      cuda::check_launch("eltwise_scale_kernel");
      break;
    case EltwiseCudaOp::kProd:
      if (!stable_prod_grad) {
        eltwise_prod_grad_fast_kernel<<<blocks, cuda::kThreads, 0, stream>>>(dx, dy, y, xs[k], n);
        cuda::check_launch("eltwise_prod_grad_fast_kernel");
        break;
      }
      for (int64_t begin = 0; begin < bottoms; begin += kMaxPack) {
        const int64_t end = std::min<int64_t>(begin + kMaxPack, bottoms);
        const Pack p = make_pack(xs, nullptr, begin, end);
        const int skip = k >= begin && k < end ? static_cast<int>(k - begin) : -1;
        eltwise_prod_grad_kernel<<<blocks, cuda::kThreads, 0, stream>>>(dx, dy, p, n, skip, begin == 0,
                                                                       end == bottoms);
        cuda::check_launch("eltwise_prod_grad_kernel");
      }
      break;
    case EltwiseCudaOp::kMax:
      eltwise_max_grad_kernel<<<blocks, cuda::kThreads, 0, stream>>>(dx, dy, argmax, n, static_cast<int>(k));
      cuda::check_launch("eltwise_max_grad_kernel");
      break;
  }
}

}  // namespace coco
