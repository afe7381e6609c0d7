#include "layers/eltwise_layer.h"

#include "engine/common.h"

#if COCO_WITH_CUDA
#include "layers/eltwise_cuda.h"
#endif

namespace coco {

using Op = proto::EltwiseParameter;

void EltwiseLayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng&) {
  const auto& p = param_.eltwise_param();
  if (p.coeff_size() > 0 && p.operation() != Op::SUM)
    COCO_THROW(where(), "coeff is only for operation SUM");
  if (p.coeff_size() > 0 && p.coeff_size() != static_cast<int>(bottom.size()))
    COCO_THROW(where(), "has ", bottom.size(), " bottoms but ", p.coeff_size(), " coeff (one per bottom)");
  coeff_.assign(bottom.size(), 1.0f);
  for (int i = 0; i < p.coeff_size(); ++i) coeff_[i] = p.coeff(i);
}

void EltwiseLayer::reshape(const Blobs& bottom, const Blobs& top) {
  for (size_t i = 1; i < bottom.size(); ++i)
    if (bottom[i]->shape() != bottom[0]->shape())
      COCO_THROW(where(), "bottom ", i, " has shape ", shape_str(bottom[i]->shape()), ", bottom 0 has ",
                 shape_str(bottom[0]->shape()), " (all must match)");
  for (auto* b : bottom)
    if (b == top[0]) COCO_THROW(where(), "cannot run in place");
  top[0]->reshape_like(*bottom[0]);
  if (param_.eltwise_param().operation() == Op::MAX) {
    if (bottom[0]->device() == Device::kCUDA) {
      argmax_dev_.set_device(Device::kCUDA);
      argmax_dev_.reshape(bottom[0]->shape());
    } else {
      argmax_.resize(bottom[0]->count());
    }
  }
}

void EltwiseLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  const int64_t n = bottom[0]->count();
  const int64_t B = static_cast<int64_t>(bottom.size());
  std::vector<const float*> xs;  // (bottoms) data pointers
  for (auto* b : bottom) xs.push_back(b->cdata());
  float* y = top[0]->mutable_data();
  switch (param_.eltwise_param().operation()) {
    case Op::SUM:
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        float acc = 0;
        for (int64_t b = 0; b < B; ++b) acc += coeff_[b] * xs[b][i];
        y[i] = acc;
      }
      break;
    case Op::PROD:
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        float acc = xs[0][i];
        for (int64_t b = 1; b < B; ++b) acc *= xs[b][i];
        y[i] = acc;
      }
      break;
    case Op::MAX: {
      int* arg = argmax_.data();
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        float best = xs[0][i];
        int who = 0;
        for (int64_t b = 1; b < B; ++b)
          if (xs[b][i] > best) best = xs[b][i], who = static_cast<int>(b);
        y[i] = best;
        arg[i] = who;
      }
      break;
    }
    default:
      COCO_THROW(where(), "unknown operation ", static_cast<int>(param_.eltwise_param().operation()));
  }
}

// Each bottom's diff (=): coeff * dy (SUM), dy * prod of the others (PROD), dy where
// it won (MAX).
void EltwiseLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  const auto& p = param_.eltwise_param();
  const int64_t n = top[0]->count();
  const int64_t B = static_cast<int64_t>(bottom.size());
  const float* dy = top[0]->cdiff();
  const float* y = top[0]->cdata();
  std::vector<const float*> xs;  // (bottoms) data pointers
  for (auto* b : bottom) xs.push_back(b->cdata());
  for (int64_t k = 0; k < B; ++k) {
    if (!propagate_down[k]) continue;
    float* dx = bottom[k]->mutable_diff();
    switch (p.operation()) {
      case Op::SUM: {
        const float c = coeff_[k];
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) dx[i] = c * dy[i];
        break;
      }
      case Op::PROD:
        if (p.stable_prod_grad()) {
#pragma omp parallel for schedule(static)
          for (int64_t i = 0; i < n; ++i) {
            float acc = 1;
            for (int64_t b = 0; b < B; ++b)
              if (b != k) acc *= xs[b][i];
            dx[i] = dy[i] * acc;
          }
        } else {
#pragma omp parallel for schedule(static)
          for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * y[i] / xs[k][i];
        }
        break;
      case Op::MAX: {
        const int* arg = argmax_.data();
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) dx[i] = arg[i] == k ? dy[i] : 0.0f;
        break;
      }
      default:
        COCO_THROW(where(), "unknown operation ", static_cast<int>(p.operation()));
    }
  }
}

#if COCO_WITH_CUDA
static EltwiseCudaOp cuda_op(Op::EltwiseOp op, const std::string& where) {
  switch (op) {
    case Op::SUM: return EltwiseCudaOp::kSum;
    case Op::PROD: return EltwiseCudaOp::kProd;
    case Op::MAX: return EltwiseCudaOp::kMax;
    default: COCO_THROW(where, "unknown operation ", static_cast<int>(op));
  }
}

void EltwiseLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  const auto op = cuda_op(param_.eltwise_param().operation(), where());
  std::vector<const float*> xs;  // (bottoms) device data pointers
  for (auto* b : bottom) xs.push_back(b->cdata());
  eltwise_forward_cuda(top[0]->mutable_data(), op == EltwiseCudaOp::kMax ? argmax_dev_.data() : nullptr,
                       xs.data(), coeff_.data(), static_cast<int64_t>(xs.size()), bottom[0]->count(), op,
                       cuda::stream());
}

void EltwiseLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  const auto& p = param_.eltwise_param();
  const auto op = cuda_op(p.operation(), where());
  std::vector<const float*> xs;  // (bottoms) device data pointers
  for (auto* b : bottom) xs.push_back(b->cdata());
  const int64_t B = static_cast<int64_t>(bottom.size());
  for (int64_t k = 0; k < B; ++k) {
    if (!propagate_down[k]) continue;
    eltwise_backward_cuda(bottom[k]->mutable_diff(), top[0]->cdiff(), top[0]->cdata(),
                          op == EltwiseCudaOp::kMax ? argmax_dev_.data() : nullptr, xs.data(), B, k,
                          top[0]->count(), op, coeff_[k], p.stable_prod_grad(), cuda::stream());
  }
}
#else
COCO_CUDA_STUBS(EltwiseLayer)
#endif

}  // namespace coco
