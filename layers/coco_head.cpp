#include "layers/coco_head.h"

#include <cmath>
#include <utility>
#include <vector>

#include "engine/common.h"
#include "engine/logging.h"
#include "layers/class_sampler.h"

namespace coco {

void check_shard_fits(int64_t K, int ranks, const std::string& where) {
  const int64_t largest = shard_range(K, 0, ranks).count;
  if (largest > kMaxShardClasses)
    COCO_THROW(where, K, " classes on ", ranks, " rank(s) give rank 0 ", largest, " classes; one rank holds at most ",
               kMaxShardClasses, ": run on at least ", (K + kMaxShardClasses - 1) / kMaxShardClasses, " ranks");
}

void CocoHead::set_device(Device dev) {
  for (Tensor* t : {&counts_, &x_inv_norm_, &f_all_, &labels_all_, &local_labels_, &c_inv_norm_, &c_hat_, &logits_, &row_max_,
                    &local_max_, &sum_target_, &raw_target_, &flag_, &best_, &best_class_, &raw_max_, &cand_,
                    &grad_f_all_, &grad_x_, &grad_c_hat_, &sample_rows_, &sample_labels_, &sample_c_})
    t->set_device(dev);
}

CocoHeadGradient CocoHead::forward(const CocoHeadIo& given, Communicator& comm, const CocoHeadOps& ops, bool train,
                                   float loss_weight) {
  precision_ = given.precision;
  grad_scale_ = given.loss_scale;
  make_plan(given, comm, ops, train);
  gather(given, comm, ops);
  // From here on the head works on the sampled rows, if it samples.
  sampled_ = train && samples();
  // The class buffers follow the classes this step computes: sized after the draw
  // when sampling (never at the whole shard, which they would then keep).
  if (!sampled_) size_class_buffers(train);
  const CocoHeadIo io = sampled_ ? sample_classes(given, ops, train, comm.rank()) : given;
  normalise_centroids(io, ops);
  const int64_t M = plan_.M;
  const bool want_accuracy = io.accuracy != nullptr;
  fixed_ = cfg_.fixed_shift && cfg_.cosine && fixed_shift_softmax(io, comm, ops, want_accuracy);
  if (!fixed_) running_max_softmax(io, comm, ops, want_accuracy);
  const float* row_sum = sum_target_.data();
  ops.loss(io.loss, row_sum, row_max_.data(), row_sum + M, local_labels_.data(), M);
  if (want_accuracy) {
    // The best class as a column of the shard (as local_labels_), not of the sample.
    if (sampled_) ops.rows_to_classes(best_class_.data(), sample_rows_.data(), 0, plan_.shard.count, M);
    accuracy(io, comm, ops);
  }
  if (!train) return {};

  for (int64_t ch = 0; ch < plan_.n_chunks; ++ch)
    fixed_ ? fixed_backward_chunk(io, ops, ch, loss_weight) : backward_chunk(io, ops, ch, loss_weight);
  if (plan_.n_chunks == 0) ops.set(M * cfg_.D, 0.f, grad_f_all_.data());  // no classes on this rank
  CocoHeadGradient g;
  g.dx_unit = scatter(io, comm, ops);
  g.loss_weight = loss_weight;
  g.ready = true;
  return g;
}

// The N batch sizes from the global batch, as the trainer split it: no collective
// and no read back from the device.
std::vector<int64_t> CocoHead::batch_sizes(const CocoHeadIo& io, const Communicator& comm) const {
  const std::vector<int64_t> counts = shard_counts(io.M, comm.size());
  if (counts[comm.rank()] != io.Ml)
    COCO_THROW(where_, "rank ", comm.rank(), " holds ", io.Ml, " samples of a global batch of ", io.M,
               ", but its share of that batch (shard_range) is ", counts[comm.rank()]);
  return counts;
}

// Without the global batch the GEMM shapes (host values) need the N batch sizes
// gathered and read back (a short last batch may sit on any rank).
std::vector<int64_t> CocoHead::gather_batch_sizes(int64_t Ml, Communicator& comm, const CocoHeadOps& ops) {
  const int nranks = comm.size(), rank = comm.rank();
  std::vector<int64_t> counts(nranks, Ml);
  if (nranks == 1) return counts;
  counts_.reshape({nranks});
  ops.set(1, static_cast<float>(Ml), counts_.data() + rank);
  comm.all_gather(counts_.data() + rank, counts_.data(), std::vector<int64_t>(nranks, 1));
  std::vector<float> host(nranks);
  ops.read_to_host(host.data(), counts_.data(), nranks);
  for (int r = 0; r < nranks; ++r) counts[r] = static_cast<int64_t>(host[r]);
  return counts;
}

void CocoHead::make_plan(const CocoHeadIo& io, Communicator& comm, const CocoHeadOps& ops, bool train) {
  const std::vector<int64_t> counts = io.M > 0 ? batch_sizes(io, comm) : gather_batch_sizes(io.Ml, comm, ops);
  const int rank = comm.rank();
  plan_ = plan_coco_head(counts, rank, cfg_.D, cfg_.shard, cfg_.chunk, cfg_.cache_mb, train);
  if (plan_.M == 0) COCO_THROW(where_, "empty global batch");
  COCO_CHECK(counts[rank] == io.Ml, where_, "rank ", rank, " gathered batch size ", counts[rank], ", has ", io.Ml);
  size_batch_buffers(train);
}

// The buffers that follow the global batch.
void CocoHead::size_batch_buffers(bool train) {
  const int64_t M = plan_.M, D = cfg_.D;
  x_inv_norm_.reshape({plan_.Ml});
  f_all_.reshape({M, D});
  labels_all_.reshape({M});
  local_labels_.reshape({M});
  for (Tensor* t : {&row_max_, &local_max_, &best_, &best_class_}) t->reshape({M});
  sum_target_.reshape({2 * M});
  raw_target_.reshape({M});
  flag_.reshape({1});
  if (!train) return;
  grad_f_all_.reshape({M, D});
  grad_x_.reshape({plan_.Ml, D});
}

// The buffers that follow the plan's classes (the shard, or the sampled rows).
void CocoHead::size_class_buffers(bool train) {
  const int64_t D = cfg_.D, t_max = plan_.t_max;
  c_inv_norm_.reshape({plan_.shard.count});
  logits_.reshape({plan_.logits_floats()});
  if (train) grad_c_hat_.reshape({t_max, D});
}

// Class sampling (docs/DESIGN.md, "Class sampling"): the rows this rank keeps this
// step (its classes of the gathered batch and uniformly drawn others: a pure
// function of seed, iteration and rank), copied into a compact shard that the
// backward turns into their gradient, and the labels renumbered to it. Re-plans the chunks over the S rows and
// returns the io that every later step works on. The labels (columns of the shard)
// come to the host (M floats) because the draw is made there.
CocoHeadIo CocoHead::sample_classes(const CocoHeadIo& io, const CocoHeadOps& ops, bool train, int rank) {
  const int64_t M = plan_.M, D = cfg_.D;
  const ShardRange columns{0, cfg_.shard.count};
  host_labels_.reshape({M});
  ops.read_to_host(host_labels_.data(), local_labels_.data(), M);
  sample_rows_host_ =
      sample_shard_classes(host_labels_.data(), M, columns, cfg_.sample_rate, io.seed, io.iter, rank);
  const int64_t S = static_cast<int64_t>(sample_rows_host_.size());
  Tensor rows({S});
  for (int64_t k = 0; k < S; ++k) rows.data()[k] = static_cast<float>(sample_rows_host_[k]);
  sample_rows_.copy_from(rows);
  const std::vector<float> renumbered = sampled_labels(host_labels_.data(), M, columns, sample_rows_host_);
  Tensor labels({M});
  std::copy(renumbered.begin(), renumbered.end(), labels.data());
  sample_labels_.copy_from(labels);
  sample_c_.reshape({S, D});
  ops.gather_rows(sample_c_.data(), io.centroids, sample_rows_.data(), S, D);
  plan_ = plan_coco_head(plan_.counts, rank, D, ShardRange{0, S}, cfg_.chunk, cfg_.cache_mb, train);
  size_class_buffers(train);
  CocoHeadIo view = io;
  // The copy doubles as the gradient: each chunk's rows are overwritten by their
  // gradient once the backward has read them for the last time.
  view.centroids = sample_c_.data();
  view.centroid_diff = sample_c_.data();
  return view;
}

// f = alpha x̂ (or x) and the labels, written at this rank's offset and gathered in
// place. The int32 ids travel in float buffers: copies and the all-gather move their
// bits untouched. Then each becomes a column of this rank's shard, a float exact
// below 2^24 (kMaxShardClasses), which every later step compares with.
void CocoHead::gather(const CocoHeadIo& io, Communicator& comm, const CocoHeadOps& ops) {
  const int64_t D = cfg_.D, off = plan_.offset;
  float* f_all = f_all_.data();
  float* labels = labels_all_.data();
  ops.features(f_all + off * D, x_inv_norm_.data(), io.x, io.Ml, D, cfg_.alpha, cfg_.cosine);
  ops.copy(io.Ml, reinterpret_cast<const float*>(io.labels), labels + off);
  comm.all_gather(f_all + off * D, f_all, plan_.feature_counts());
  comm.all_gather(labels + off, labels, plan_.counts);
  ops.shard_columns(local_labels_.data(), reinterpret_cast<const int32_t*>(labels), plan_.M, cfg_.shard.start,
                    cfg_.shard.count, cfg_.K);
}

// RENORMALIZE rewrites the parameter itself, as the seed did. Unit centroids are
// made per chunk (chunk_centroids): no K_r x D copy.
void CocoHead::normalise_centroids(const CocoHeadIo& io, const CocoHeadOps& ops) {
  if (cfg_.cosine)
    ops.centroid_norms(io.centroids, c_inv_norm_.data(), plan_.shard.count, cfg_.D, true, cfg_.renormalize);
}

// ĉ of chunk ch: made into c_hat_ (EXACT), or the centroid rows themselves, which
// are unit rows already (RENORMALIZE) or not normalised at all (INNER_PRODUCT).
const float* CocoHead::chunk_centroids(const CocoHeadIo& io, const CocoHeadOps& ops, int64_t ch) {
  const int64_t c0 = plan_.chunk_begin(ch);
  const float* c = io.centroids + c0 * cfg_.D;
  if (!cfg_.exact()) return c;
  c_hat_.reshape({plan_.t_max, cfg_.D});  // only the running maximum makes ĉ: sized at first use
  ops.unit_centroids(c_hat_.data(), c, c_inv_norm_.data() + c0, plan_.chunk_width(ch), cfg_.D);
  return c_hat_.data();
}

// The slot of chunk ch; with `compute`, z = f ĉᵀ (M, t) is written into it.
float* CocoHead::chunk_logits(const CocoHeadOps& ops, int64_t ch, const float* u, bool compute) {
  float* z = logits_.data() + plan_.slot_offset(ch);
  if (compute)
    ops.gemm(precision_, Trans::kNo, Trans::kYes, plan_.M, plan_.chunk_width(ch), cfg_.D, 1.f, f_all_.data(), u, 0.f,
             z);
  return z;
}

void CocoHead::chunk_stats(const CocoHeadIo& io, const CocoHeadOps& ops, int64_t ch, bool want_accuracy) {
  const int64_t M = plan_.M;
  const float* z = chunk_logits(ops, ch, chunk_centroids(io, ops, ch), true);
  float* row_sum = sum_target_.data();
  ops.chunk_stats(row_max_.data(), row_sum, row_sum + M, best_.data(), best_class_.data(), z, target_labels(), M,
                  plan_.chunk_width(ch), plan_.chunk_begin(ch), want_accuracy, cfg_.margin);
}

void CocoHead::running_max_softmax(const CocoHeadIo& io, Communicator& comm, const CocoHeadOps& ops,
                                   bool want_accuracy) {
  ops.init_stats(row_max_.data(), sum_target_.data(), best_.data(), best_class_.data(), plan_.M);
  for (int64_t ch = 0; ch < plan_.n_chunks; ++ch) chunk_stats(io, ops, ch, want_accuracy);
  join_ranks(comm, ops);
}

namespace {
// exp of a logit more than 87 below the shift is taken as 0 (float turns subnormal
// there), so a row loses at most K such terms of e^-87 each. A row sum below
// K e^-87 2^24 could therefore be off by more than float's round-off.
constexpr double kFixedShiftLostTerm = 1.6458114310822737e-38;  // e^-87
constexpr double kFloatUlpsKept = 16777216.0;                   // 2^24
}  // namespace

// The fixed shift alpha: per chunk exp(z - alpha) and the row sums in one pass (the
// terms stay in the logits cache), then one SUM of [row sums, target logits]: 2M
// floats of all-reduce, no MAX. Every rank holds the same global sums, so all of
// them agree when one is too small to trust (every cosine of its row below about
// 1 - 70/alpha; possible only for alpha > 35) and redo the step with the running
// maximum. Returns false then.
bool CocoHead::fixed_shift_softmax(const CocoHeadIo& io, Communicator& comm, const CocoHeadOps& ops,
                                   bool want_accuracy) {
  const int64_t M = plan_.M, D = cfg_.D;
  float* row_sum = sum_target_.data();
  ops.init_stats(row_max_.data(), row_sum, best_.data(), best_class_.data(), M);
  for (int64_t ch = 0; ch < plan_.n_chunks; ++ch) {
    const int64_t c0 = plan_.chunk_begin(ch);
    float* z = chunk_logits(ops, ch, io.centroids + c0 * D, true);
    ops.exp_stats(z, row_sum, row_sum + M, raw_target_.data(), best_.data(), best_class_.data(), column_scale(ch),
                  target_labels(), M, plan_.chunk_width(ch), c0, cfg_.alpha,
                  ch < plan_.cached_chunks, want_accuracy, cfg_.margin);
  }
  comm.all_reduce(row_sum, 2 * M, ReduceOp::kSum);
  const float safe = static_cast<float>(static_cast<double>(cfg_.K) * kFixedShiftLostTerm * kFloatUlpsKept);
  const int64_t unsafe = ops.count_below(row_sum, M, safe, flag_.data());
  if (unsafe > 0) {
    if (fallbacks_++ == 0)
      spdlog::warn("{}", detail::concat(where_, unsafe, " of ", M, " rows have a softmax sum below ", safe,
                                        " with the fixed shift alpha = ", cfg_.alpha,
                                        " (every cosine of the row far below 1): this step, and any other like it, "
                                        "is redone with the running maximum (softmax_shift: RUNNING_MAX always does)"));
    return false;
  }
  ops.set(M, cfg_.alpha, row_max_.data());  // the loss's shift
  return true;
}

// The inverse norms of chunk ch's centroids (EXACT), which turn f cᵀ into f ĉᵀ; null
// where the rows are unit already (RENORMALIZE).
const float* CocoHead::column_scale(int64_t ch) const {
  return cfg_.exact() ? c_inv_norm_.data() + plan_.chunk_begin(ch) : nullptr;
}

// MAX of the row maxima, the local sums rescaled to it, then one SUM of
// [row sums, target logits]: 3M floats of all-reduce.
void CocoHead::join_ranks(Communicator& comm, const CocoHeadOps& ops) {
  const int64_t M = plan_.M;
  ops.copy(M, row_max_.data(), local_max_.data());
  comm.all_reduce(row_max_.data(), M, ReduceOp::kMax);
  ops.rescale_sums(sum_target_.data(), local_max_.data(), row_max_.data(), M);
  comm.all_reduce(sum_target_.data(), 2 * M, ReduceOp::kSum);
}

// Top-1 of the raw logits; ties go to the lowest class. A rank that holds a row's
// best logit offers 2 rank + (its best class is not the label); the MIN over ranks
// picks the lowest such rank (shards ascend with the rank), and the row is right
// where that is even. Small integers: exact in float for any class count.
void CocoHead::accuracy(const CocoHeadIo& io, Communicator& comm, const CocoHeadOps& ops) {
  const int64_t M = plan_.M;
  raw_max_.reshape({M});
  cand_.reshape({M});
  ops.copy(M, best_.data(), raw_max_.data());
  comm.all_reduce(raw_max_.data(), M, ReduceOp::kMax);
  ops.accuracy_candidates(cand_.data(), best_.data(), raw_max_.data(), best_class_.data(), local_labels_.data(),
                          comm.rank(), M);
  comm.all_reduce(cand_.data(), M, ReduceOp::kMin);
  ops.accuracy(io.accuracy, cand_.data(), M);
}

// G = (softmax - onehot)/M (times the margin's slope at the target) in place of
// the logits; the centroid gradient Gᵀf (+ the normalisation's Jacobian) into the
// parameter diff; the partial feature gradient G ĉ over this rank's classes.
void CocoHead::backward_chunk(const CocoHeadIo& io, const CocoHeadOps& ops, int64_t ch, float loss_weight) {
  const int64_t M = plan_.M, D = cfg_.D, c0 = plan_.chunk_begin(ch), t = plan_.chunk_width(ch);
  const float* u = chunk_centroids(io, ops, ch);
  float* z = chunk_logits(ops, ch, u, ch >= plan_.cached_chunks);
  ops.softmax_grad(z, row_max_.data(), sum_target_.data(), target_labels(), M, t, c0,
                   grad_scale_ / M, cfg_.margin);
  const float unscale = 1.f / grad_scale_;
  // (M, D) (+)= G (M, t) · ĉ (t, D); the first chunk writes. Before the centroid
  // gradient: a sampling head writes that into its copy of these rows.
  ops.gemm(precision_, Trans::kNo, Trans::kNo, M, D, t, unscale, z, u, ch == 0 ? 0.f : 1.f, grad_f_all_.data());
  // (t, D) = Gᵀ (t, M) · f (M, D)
  ops.gemm(precision_, Trans::kYes, Trans::kNo, t, D, M, unscale, z, f_all_.data(), 0.f, grad_c_hat_.data());
  float* dc = io.centroid_diff + c0 * D;
  if (sampled_) ops.set(t * D, 0.f, dc);  // the copy of the rows, read for the last time above
  ops.centroid_grad(dc, grad_c_hat_.data(), u, c_inv_norm_.data() + c0, t, D, loss_weight, cfg_.exact());
}

// The fixed shift's backward over the raw centroid rows c: G' = G diag(inv) in
// place of the cached terms, then Gᵀ... as in backward_chunk, with ĉ = c inv folded
// in: dL/df (+)= G' c; dL/dc = h - c inv² (c·h) for h = G'ᵀ f (EXACT), or h itself
// times the loss weight straight into the parameter diff (RENORMALIZE).
void CocoHead::fixed_backward_chunk(const CocoHeadIo& io, const CocoHeadOps& ops, int64_t ch, float loss_weight) {
  const int64_t M = plan_.M, D = cfg_.D, c0 = plan_.chunk_begin(ch), t = plan_.chunk_width(ch);
  const float* c = io.centroids + c0 * D;
  const bool cached = ch < plan_.cached_chunks;
  float* z = chunk_logits(ops, ch, c, !cached);
  ops.fixed_shift_grad(z, sum_target_.data(), raw_target_.data(), column_scale(ch), target_labels(), M, t,
                       c0, cfg_.alpha, grad_scale_ / M, cached, cfg_.margin);
  const float unscale = 1.f / grad_scale_;
  // dL/df first: a sampling head's gradient overwrites its copy of c (dc == c there,
  // each element read before it is written).
  ops.gemm(precision_, Trans::kNo, Trans::kNo, M, D, t, unscale, z, c, ch == 0 ? 0.f : 1.f, grad_f_all_.data());
  float* dc = io.centroid_diff + c0 * D;
  if (cfg_.exact()) {
    ops.gemm(precision_, Trans::kYes, Trans::kNo, t, D, M, unscale, z, f_all_.data(), 0.f, grad_c_hat_.data());
    ops.centroid_grad_scaled(dc, grad_c_hat_.data(), c, c_inv_norm_.data() + c0, t, D, loss_weight,
                             /*accumulate=*/!sampled_);
  } else {
    ops.gemm(precision_, Trans::kYes, Trans::kNo, t, D, M, loss_weight * unscale, z, f_all_.data(), 1.f, dc);
  }
}

// Each rank receives the summed gradient of its own rows, then dL/df -> dL/dx.
const float* CocoHead::scatter(const CocoHeadIo& io, Communicator& comm, const CocoHeadOps& ops) {
  comm.reduce_scatter(grad_f_all_.data(), grad_x_.data(), plan_.feature_counts());
  if (cfg_.cosine) ops.project_features(grad_x_.data(), io.x, x_inv_norm_.data(), io.Ml, cfg_.D, cfg_.alpha);
  return grad_x_.data();
}

}  // namespace coco
