#include "engine/solver.h"

#include <algorithm>
#include <cmath>

#include "engine/common.h"
#include "engine/cuda_math.h"
#include "engine/math.h"
#include "engine/proto/coco.pb.h"

namespace coco {

SgdSolver::SgdSolver(const proto::SolverParameter& param, Net* net, Communicator* host_comm)
    : param_(param), net_(net), host_comm_(host_comm) {
  if (param_.precision() == proto::SolverParameter::FP16)
    loss_scale_.emplace(param_.loss_scale(), param_.loss_scale_window());
  const auto& params = net_->params();
  for (size_t i = 0; i < params.size(); ++i) {
    if (!params[i].learnable) continue;
    learnable_.push_back(static_cast<int>(i));
    history_.emplace_back(params[i].blob->shape(), params[i].blob->device());
    history_.back().zero();
  }
}

double SgdSolver::learning_rate(int64_t iter) const {
  const double base = param_.base_lr(), gamma = param_.gamma(), power = param_.power();
  const std::string policy = param_.has_lr_policy() ? param_.lr_policy() : "fixed";
  const double max_iter = param_.max_iter();
  const double floor_lr = base * param_.min_lr_factor();
  double lr = base;
  if (policy == "step") {
    lr = base * std::pow(gamma, std::floor(static_cast<double>(iter) / param_.stepsize()));
  } else if (policy == "multistep") {
    int passed = 0;
    for (int v : param_.stepvalue()) passed += iter >= v;
    lr = base * std::pow(gamma, passed);
  } else if (policy == "exp") {
    lr = base * std::pow(gamma, static_cast<double>(iter));
  } else if (policy == "inv") {
    lr = base * std::pow(1 + gamma * iter, -power);
  } else if (policy == "poly") {
    lr = floor_lr + (base - floor_lr) * std::pow(std::max(0.0, 1 - iter / max_iter), power);
  } else if (policy == "cosine") {
    const double t = std::min(1.0, iter / max_iter);
    lr = floor_lr + (base - floor_lr) * 0.5 * (1 + std::cos(M_PI * t));
  }
  if (iter < param_.warmup_iter()) {
    const double s = param_.warmup_start_factor();
    lr *= s + (1 - s) * static_cast<double>(iter) / param_.warmup_iter();
  }
  return lr;
}

namespace {

// The tensor that holds a parameter's gradient this step: its diff, or the sampled
// rows' gradient (Layer::row_gradient); null when it has neither (no train pass yet).
const Tensor* gradient_of(const ParamInfo& p) {
  const Layer::RowGradient rows = p.owner ? p.owner->row_gradient(p.index) : Layer::RowGradient{};
  if (rows.grad) return rows.grad;
  return p.blob->has_diff() ? &p.blob->diff() : nullptr;
}

double squared_norm(const Tensor& g) {
  return g.device() == Device::kCUDA ? cuda_dot_double(g.count(), g.data(), g.data(), cuda::stream())
                                     : cpu_dot_double(g.count(), g.data(), g.data());
}

// The update of the rows named by `rows` alone (a sampled head's classes), with g
// holding their gradients in that order. Unsampled rows keep their weights and
// momentum: no decay, no momentum step (docs/DESIGN.md, "Class sampling").
void update_rows_cpu(const Tensor& rows, const float* g, int64_t row_size, float* w, float* v, float lr,
                     float momentum, float decay, bool l1, float grad_scale) {
  const int64_t n = rows.count();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    const int64_t k = static_cast<int64_t>(rows.data()[r]);
    float* wk = w + k * row_size;
    float* vk = v + k * row_size;
    const float* gr = g + r * row_size;
    for (int64_t d = 0; d < row_size; ++d) {
      const float reg = l1 ? decay * ((wk[d] > 0) - (wk[d] < 0)) : decay * wk[d];
      vk[d] = momentum * vk[d] + lr * (grad_scale * gr[d] + reg);
      wk[d] -= vk[d];
    }
  }
}

}  // namespace

double SgdSolver::gradient_norm() const {
  double replicated = 0, sharded = 0;
  for (int i : learnable_) {
    const ParamInfo& p = net_->params()[i];
    const Tensor* g = gradient_of(p);
    if (g) (p.sharded ? sharded : replicated) += squared_norm(*g);
  }
  if (host_comm_ && host_comm_->size() > 1) {
    // The collectives carry floats: a relative error of 1e-7 in a clip factor is
    // far below what the update's own float arithmetic keeps.
    float sum = static_cast<float>(sharded);
    host_comm_->all_reduce(&sum, 1, ReduceOp::kSum);
    sharded = sum;
  }
  return std::sqrt(replicated + sharded) / param_.iter_size() / loss_scale();
}

void SgdSolver::apply_update(int64_t iter) {
  apply_update(iter, param_.clip_gradients() > 0 ? gradient_norm() : 0.0);
}

void SgdSolver::apply_update(int64_t iter, double grad_norm) {
  const float lr = static_cast<float>(learning_rate(iter));
  const float momentum = param_.momentum(), wd = param_.weight_decay();
  const bool l1 = param_.regularization_type() == "L1";
  // The clip factor, and 1/iter_size: the diffs hold the sum of iter_size batches
  // (and 1/loss_scale under FP16: a power of two, so the product is exact).
  float grad_scale = 1.f / static_cast<float>(param_.iter_size()) / loss_scale();
  if (param_.clip_gradients() > 0 && grad_norm > param_.clip_gradients())
    grad_scale *= static_cast<float>(param_.clip_gradients() / grad_norm);
  for (size_t h = 0; h < learnable_.size(); ++h) {
    const ParamInfo& p = net_->params()[learnable_[h]];
    Blob& b = *p.blob;
    float* w = b.mutable_data();
    float* v = history_[h].data();
    const float local_lr = lr * p.lr_mult, decay = wd * p.decay_mult;
    const Layer::RowGradient rows = p.owner ? p.owner->row_gradient(p.index) : Layer::RowGradient{};
    if (rows.rows) {
      const int64_t row_size = b.count(1);
      if (b.device() == Device::kCUDA)
        cuda_sgd_update_rows(rows.rows->count(), row_size, rows.rows->data(), w, v, rows.grad->data(), local_lr,
                             momentum, decay, l1, grad_scale, cuda::stream());
      else
        update_rows_cpu(*rows.rows, rows.grad->data(), row_size, w, v, local_lr, momentum, decay, l1, grad_scale);
      continue;
    }
    if (!b.has_diff()) continue;  // a sampled parameter before its first train pass
    const float* g = b.cdiff();
    const int64_t n = b.count();
    if (b.device() == Device::kCUDA) {
      COCO_CHECK(history_[h].device() == Device::kCUDA, "momentum of '", p.layer, "' is not on the device");
      cuda_sgd_update(n, w, v, g, local_lr, momentum, decay, l1, grad_scale, cuda::stream());
      continue;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const float reg = l1 ? decay * ((w[i] > 0) - (w[i] < 0)) : decay * w[i];
      v[i] = momentum * v[i] + local_lr * (grad_scale * g[i] + reg);
      w[i] -= v[i];
    }
  }
}

void SgdSolver::to_device(Device dev) {
  for (auto& h : history_) {
    if (h.device() == dev) continue;
    Tensor keep;
    keep.copy_from(h);
    h.set_device(dev);
    h.copy_from(keep);
  }
}

Tensor* SgdSolver::history_of(size_t param_index) {
  for (size_t h = 0; h < learnable_.size(); ++h)
    if (learnable_[h] == static_cast<int>(param_index)) return &history_[h];
  return nullptr;
}

void SgdSolver::save_state(proto::SolverState* state) const {
  if (loss_scale_) loss_scale_->save(state);
  state->clear_history();
  for (size_t i = 0; i < history_.size(); ++i) {
    if (net_->params()[learnable_[i]].sharded) continue;
    const Tensor& h = history_[i];
    auto* bp = state->add_history();
    for (auto d : h.shape()) bp->mutable_shape()->add_dim(d);
    const auto v = h.to_vector();
    bp->mutable_data()->Add(v.begin(), v.end());
  }
}

void SgdSolver::restore_state(const proto::SolverState& state, const std::string& origin) {
  if (loss_scale_) loss_scale_->restore(state, origin);
  std::vector<size_t> replicated;
  for (size_t h = 0; h < history_.size(); ++h)
    if (!net_->params()[learnable_[h]].sharded) replicated.push_back(h);
  if (state.history_size() != static_cast<int>(replicated.size()))
    COCO_THROW(origin, ": holds ", state.history_size(), " momentum buffers, this net has ", replicated.size(),
               " replicated learnable parameters");
  for (size_t k = 0; k < replicated.size(); ++k) {
    const size_t h = replicated[k];
    const auto& bp = state.history(static_cast<int>(k));
    if (bp.data_size() != history_[h].count())
      COCO_THROW(origin, ": momentum buffer ", h, " holds ", bp.data_size(), " values, expected ",
                 history_[h].count());
    std::vector<float> v(bp.data().begin(), bp.data().end());
    Tensor host({static_cast<int64_t>(v.size())});
    std::copy(v.begin(), v.end(), host.data());
    host.reshape(history_[h].shape());
    history_[h].copy_from(host);
  }
}

}  // namespace coco
