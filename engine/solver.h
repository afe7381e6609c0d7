// SGD with momentum and weight decay, Caffe's update rule, and learning-rate policies.
//
//   g   = diff + wd * decay_mult * w          (L2; L1 uses sign(w))
//   v   = momentum * v + lr * lr_mult * g
//   w  -= v
//
// Under precision FP16 the gradients come loss_scale() times larger and are divided
// back here (engine/loss_scale.h).
//
// Policies: fixed, step, multistep, exp, inv, poly, cosine, each optionally with a
// linear warm-up over the first warmup_iter iterations from warmup_start_factor * lr.
// Only learnable parameters are stepped (running statistics and lr_mult 0 are not).
#pragma once

#include <optional>
#include <vector>

#include "engine/loss_scale.h"
#include "engine/net.h"
#include "engine/proto_fwd.h"
#include "engine/settings.h"  // validate_solver

namespace coco {

class SgdSolver {
 public:
  // `host_comm` joins the sharded parameters' gradient norms across ranks (host
  // scalars: MPI); null for one process.
  SgdSolver(const proto::SolverParameter& param, Net* net, Communicator* host_comm = nullptr);

  // The learning rate at iteration `iter` (0-based), warm-up included.
  double learning_rate(int64_t iter) const;
  // Applies one update with the rate of `iter` to the net's current diffs.
  void apply_update(int64_t iter);
  // The same, clipping with `grad_norm`, gradient_norm() of these diffs, which the
  // caller already took: no second pass over the gradients, no second collective.
  void apply_update(int64_t iter, double grad_norm);
  // The diffs hold the sum of iter_size batches' gradients; the update and the norm
  // use their mean (Caffe's iter_size), folded into the clip factor: no extra pass.
  //
  // Global L2 norm of the learnable (mean) gradients (before the update): the replicated
  // parameters (already summed over ranks, so the same on every rank) and every
  // rank's shard of the sharded ones, so all ranks get the same norm and the same
  // clip factor. Collective: every rank calls it at the same point. NaN or Inf when
  // a gradient holds one.
  double gradient_norm() const;
  // Moves the momentum buffers to the net's device (call after Net::to_device).
  void to_device(Device dev);

  // Momentum buffers of the replicated (not sharded) learnable parameters, in order.
  // Sharded parameters' buffers travel with their shards (history_of).
  void save_state(proto::SolverState* state) const;
  void restore_state(const proto::SolverState& state, const std::string& origin);
  // The momentum buffer of net parameter `param_index` (nullptr if not learnable).
  Tensor* history_of(size_t param_index);

  const proto::SolverParameter& param() const { return param_; }

  // FP16's dynamic loss scale (engine/loss_scale.h): the factor backward should
  // start from (1 at other precisions); gradient_norm() and the update divide it
  // out. Saved and restored with the momentum (save_state).
  float loss_scale() const { return loss_scale_ ? loss_scale_->value() : 1.f; }
  // Null unless precision is FP16.
  DynamicLossScale* dynamic_loss_scale() { return loss_scale_ ? &*loss_scale_ : nullptr; }

 private:
  proto::SolverParameter param_;
  Net* net_;
  Communicator* host_comm_;
  std::vector<Tensor> history_;  // momentum, one per learnable parameter
  std::vector<int> learnable_;   // indices into net_->params()
  std::optional<DynamicLossScale> loss_scale_;
};

}  // namespace coco
