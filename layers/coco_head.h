// The COCO head's algorithm, one orchestration for the CPU and the GPU
// (docs/DESIGN.md, "The distributed head").
//
// A forward is a fixed sequence of named steps over this rank's shard of the
// centroids, each step a few calls into CocoHeadOps (the device's bodies) and the
// communicator:
//   plan          batch sizes of every rank -> CocoHeadPlan (chunks, cache slots)
//   gather        f = alpha x̂ (or x) and the labels of every rank, in place; the
//                 labels (int32 ids) become columns of this rank's shard
//   sample        (train, sample_rate < 1) this rank's classes of the batch plus
//                 uniformly drawn others; their rows copied into a compact shard that
//                 every later step works on, the labels renumbered to it
//   normalise     centroid norms (RENORMALIZE rewrites the rows)
//   chunk stats   per chunk z = f ĉᵀ (M x t) and the softmax sums, with one of two shifts:
//                 fixed   COSINE logits are at most alpha: exp(z - alpha) in one
//                         pass, kept in the logits cache (ĉ never made: z = (f cᵀ)
//                         times the centroids' inverse norms per column)
//                 running the online maximum (INNER_PRODUCT logits, softmax_shift:
//                         RUNNING_MAX, or a fixed-shift step whose sums were unsafe)
//   join ranks    fixed: one SUM of [row sums, target logits]; running: MAX of row
//                 maxima first, and the sums rescaled to it
//   loss          mean(log s + m - target), and the top-1 accuracy if asked
// and, in the train phase, in the same call (the logits are still cached):
//   backward chunks  G = (softmax - onehot)/M; centroid gradient Gᵀf into the
//                    parameter diff (times loss_weight); partial feature gradient G ĉ
//   scatter          reduce-scatter of the feature gradient; project to dL/dx
// The buffers are Tensors on the features' device; none is K-wide or M x K_r
// beyond the logits cache.
#pragma once

#include <string>
#include <vector>

#include "comm/communicator.h"
#include "engine/tensor.h"
#include "layers/coco_head_ops.h"
#include "layers/coco_head_plan.h"
#include "layers/coco_margin.h"

namespace coco {

// The most classes one rank's shard may hold: the head turns each label into a
// column of its shard held as a float (the kernels' label type), exact to 2^24.
constexpr int64_t kMaxShardClasses = int64_t{1} << 24;
// Throws (where: the layer) if K classes over `ranks` ranks give rank 0, the
// largest shard, more than kMaxShardClasses, naming the ranks that would do.
void check_shard_fits(int64_t K, int ranks, const std::string& where);

struct CocoHeadConfig {
  int64_t K = 0;             // classes, all ranks
  int64_t D = 0;             // feature size
  int64_t chunk = 0;         // classes per chunk (0: the whole shard)
  double cache_mb = 0;       // logits cache budget (MiB)
  float alpha = 1;           // scale (1 for inner-product logits)
  bool cosine = true;        // COSINE logits (else INNER_PRODUCT: nothing normalised)
  bool renormalize = false;  // RENORMALIZE: rows rewritten to unit norm, no Jacobian
  CocoMarginParams margin;
  ShardRange shard;          // this rank's classes
  bool fixed_shift = true;   // softmax_shift AUTO: the fixed shift where the logits are bounded
  double sample_rate = 1;    // < 1: class sampling in the train phase (docs/DESIGN.md, "Class sampling")
  bool exact() const { return cosine && !renormalize; }
};

// What one forward reads and writes. Pointers on the head's device.
struct CocoHeadIo {
  const float* x = nullptr;       // (M_l, D) features
  const int32_t* labels = nullptr;  // (M_l) class ids
  int64_t Ml = 0;
  float* centroids = nullptr;      // (K_r, D); RENORMALIZE rewrites them
  float* centroid_diff = nullptr;  // (K_r, D), accumulated (+=) in a train forward
  float* loss = nullptr;           // (1)
  float* accuracy = nullptr;       // (1), or null when not wanted
  // The global batch, split over the ranks by shard_range (the trainer's split), so
  // every rank knows every M_r without asking; 0: not known (a net driven by hand),
  // and the N sizes are gathered and read back to the host.
  int64_t M = 0;
  // The step's randomness (class sampling): the run's seed and the iteration.
  uint64_t seed = 1;
  int64_t iter = 0;
  // Solver precision: the logits GEMM and the two gradient GEMMs read operands
  // rounded to it; the softmax statistics stay fp32. With a loss scale s (FP16) the
  // softmax gradient enters its GEMMs as s G, so that small terms survive the
  // rounding, and the GEMMs take 1/s back out (s: a power of two, exact).
  Precision precision = Precision::kFP32;
  float loss_scale = 1.f;
};

// The forward-to-backward handoff: the feature gradient at unit top weight, and
// the loss weight the centroid gradient was already scaled with (the top's diff
// must equal it, or the two halves of the gradient would disagree).
struct CocoHeadGradient {
  const float* dx_unit = nullptr;  // (M_l, D) on the head's device
  float loss_weight = 0;
  bool ready = false;
};

class CocoHead {
 public:
  CocoHead() = default;
  CocoHead(const CocoHeadConfig& config, std::string where) : cfg_(config), where_(std::move(where)) {}

  void set_device(Device dev);  // the buffers follow the features' device
  // Runs the steps above; a train forward also returns the gradient handoff.
  CocoHeadGradient forward(const CocoHeadIo& io, Communicator& comm, const CocoHeadOps& ops, bool train,
                           float loss_weight);
  const CocoHeadPlan& plan() const { return plan_; }
  // Whether the last forward used the fixed shift, and how many forwards fell back
  // from it to the running maximum (their row sums were too small to trust).
  bool used_fixed_shift() const { return fixed_; }
  int64_t fixed_shift_fallbacks() const { return fallbacks_; }
  // With class sampling, after a train forward: the shard's rows the step kept
  // (ascending, as floats on the head's device; sampled_rows_host() on the host) and
  // their centroid gradient (rows x D, times the loss weight), which the solver
  // applies to those rows alone. Null otherwise.
  bool samples() const { return cfg_.sample_rate < 1; }
  const Tensor* sampled_rows() const { return sampled_ ? &sample_rows_ : nullptr; }
  const Tensor* sampled_grad() const { return sampled_ ? &sample_c_ : nullptr; }
  const std::vector<int64_t>& sampled_rows_host() const { return sample_rows_host_; }

 private:
  void make_plan(const CocoHeadIo& io, Communicator& comm, const CocoHeadOps& ops, bool train);
  void size_class_buffers(bool train);
  CocoHeadIo sample_classes(const CocoHeadIo& io, const CocoHeadOps& ops, bool train, int rank);
  // Each row's target as a column of the classes this step computes (the shard, or
  // the sampled rows): -1 where it is on another rank, NaN where it is no class.
  const float* target_labels() const { return sampled_ ? sample_labels_.data() : local_labels_.data(); }
  std::vector<int64_t> batch_sizes(const CocoHeadIo& io, const Communicator& comm) const;
  std::vector<int64_t> gather_batch_sizes(int64_t Ml, Communicator& comm, const CocoHeadOps& ops);
  void size_batch_buffers(bool train);
  void gather(const CocoHeadIo& io, Communicator& comm, const CocoHeadOps& ops);
  void normalise_centroids(const CocoHeadIo& io, const CocoHeadOps& ops);
  const float* chunk_centroids(const CocoHeadIo& io, const CocoHeadOps& ops, int64_t ch);
  float* chunk_logits(const CocoHeadOps& ops, int64_t ch, const float* u, bool compute);
  void chunk_stats(const CocoHeadIo& io, const CocoHeadOps& ops, int64_t ch, bool want_accuracy);
  void join_ranks(Communicator& comm, const CocoHeadOps& ops);
  void running_max_softmax(const CocoHeadIo& io, Communicator& comm, const CocoHeadOps& ops, bool want_accuracy);
  bool fixed_shift_softmax(const CocoHeadIo& io, Communicator& comm, const CocoHeadOps& ops, bool want_accuracy);
  const float* column_scale(int64_t ch) const;
  void fixed_backward_chunk(const CocoHeadIo& io, const CocoHeadOps& ops, int64_t ch, float loss_weight);
  void accuracy(const CocoHeadIo& io, Communicator& comm, const CocoHeadOps& ops);
  void backward_chunk(const CocoHeadIo& io, const CocoHeadOps& ops, int64_t ch, float loss_weight);
  const float* scatter(const CocoHeadIo& io, Communicator& comm, const CocoHeadOps& ops);

  CocoHeadConfig cfg_;
  std::string where_;  // the layer, for messages
  CocoHeadPlan plan_;
  bool fixed_ = false;     // the last forward's shift
  Precision precision_ = Precision::kFP32;  // the forward's (CocoHeadIo)
  float grad_scale_ = 1.f;                  // the forward's loss scale
  bool sampled_ = false;   // the last forward sampled classes
  int64_t fallbacks_ = 0;  // fixed-shift forwards redone with the running maximum

  // Scratch (grown, never shrunk). M = global batch, M_l = local batch, t' = t_max.
  Tensor counts_;       // (N) per-rank batch sizes (more than one rank only)
  Tensor x_inv_norm_;   // (M_l)
  Tensor f_all_;        // (M, D) alpha x̂ of all ranks (gathered in place)
  Tensor labels_all_;   // (M) int32 class ids of all ranks (gathered in place)
  Tensor local_labels_; // (M) the same as columns of this rank's shard (target_labels)
  Tensor c_inv_norm_;   // (K_r)
  Tensor c_hat_;        // (t', D) unit centroids of the current chunk (EXACT only)
  Tensor logits_;       // plan_.slots slots of M x t', each padded to 64 floats
  Tensor row_max_;      // (M)
  Tensor local_max_;    // (M) this rank's row maxima before the MAX all-reduce
  Tensor sum_target_;   // (2M) [row sums, target logits]
  Tensor raw_target_;   // (M) the target's logit before its margin (fixed shift; rows whose class is here)
  Tensor flag_;         // (1) count_below's scratch
  Tensor best_;         // (M) best local raw logit (accuracy)
  Tensor best_class_;   // (M) the best local raw logit's column of the shard
  Tensor raw_max_;      // (M)
  Tensor cand_;         // (M)
  Tensor grad_f_all_;   // (M, D) partial dL/df over this rank's classes
  Tensor grad_x_;       // (M_l, D) dL/dx of this rank's rows, unit weight
  Tensor grad_c_hat_;   // (t', D)
  // Class sampling (S = the step's sampled classes on this rank).
  std::vector<int64_t> sample_rows_host_;  // (S) local rows, ascending
  Tensor host_labels_;    // (M) local_labels_ on the host
  Tensor sample_rows_;    // (S) the same rows as floats, on the head's device
  Tensor sample_labels_;  // (M) labels renumbered to the sampled rows (-1: not here)
  Tensor sample_c_;       // (S, D) the sampled centroid rows; after the backward, their gradient
};

}  // namespace coco
