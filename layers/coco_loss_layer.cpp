#include "layers/coco_loss_layer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/common.h"
#include "engine/filler.h"
#include "engine/math.h"

namespace coco {

namespace {
constexpr float kEps = 1e-12f;  // inside the square root (DESIGN.md)
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
}  // namespace

double coco_auto_scale(int64_t K, double p) {
  COCO_CHECK(K >= 2, "auto scale needs at least 2 classes, got ", K);
  COCO_CHECK(p > 0 && p < 1, "target_probability must be in (0, 1), got ", p);
  const double k = static_cast<double>(K);
  const double a = (k - 1) / k * std::log((k - 1) * p / (1 - p));
  COCO_CHECK(a > 0, "auto scale is not positive (target_probability ", p, " too low for ", K, " classes)");
  return a;
}

void CocoLossLayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) {
  const auto& p = param_.coco_loss_param();
  if (!param_.has_coco_loss_param() || p.num_output() == 0)
    COCO_THROW(where(), "coco_loss_param.num_output (the number of classes) must be set and positive");
  K_ = p.num_output();
  if (K_ > (1 << 24)) COCO_THROW(where(), "at most 16,777,216 classes (labels travel as float32), got ", K_);
  update_ = p.centroid_update();
  if (p.auto_scale()) {
    if (p.has_scale()) COCO_THROW(where(), "set either scale or auto_scale, not both");
    alpha_ = static_cast<float>(coco_auto_scale(K_, p.target_probability()));
  } else {
    if (!p.has_scale() || !(p.scale() > 0))
      COCO_THROW(where(), "needs a positive scale, or auto_scale: true with target_probability");
    alpha_ = p.scale();
  }
  loss_weight_ = param_.loss_weight_size() > 0 ? param_.loss_weight(0) : 1.0f;
  D_ = bottom[0]->count(1);
  if (D_ == 0) COCO_THROW(where(), "features have no elements per sample: shape ", shape_str(bottom[0]->shape()));
  const Communicator* comm = ctx().comm;
  COCO_CHECK(comm != nullptr, "CocoLoss needs a communicator");
  shard_ = shard_range(K_, comm->rank(), comm->size());
  T_ = p.chunk_size() == 0 ? std::max<int64_t>(shard_.count, 1) : p.chunk_size();

  // One base seed from the net's stream, then one stream per global class row, so
  // a shard's initial rows equal the same rows of an unsharded run.
  const uint64_t base = rng();
  if (blobs_.empty()) {
    blobs_.push_back(std::make_shared<Blob>(Shape{shard_.count, D_}));
    proto::FillerParameter f;
    if (p.has_centroid_filler()) {
      f = p.centroid_filler();
    } else {
      f.set_type("gaussian");
      f.set_std(1);
    }
    Tensor row({1, D_});
    float* c = blobs_[0]->mutable_data();
    for (int64_t k = 0; k < shard_.count; ++k) {
      Rng row_rng(mix64(base ^ mix64(static_cast<uint64_t>(shard_.start + k) + 1)));
      fill(f, row, row_rng);
      std::copy(row.data(), row.data() + D_, c + k * D_);
    }
  } else if (blobs_[0]->shape() != Shape{shard_.count, D_}) {
    COCO_THROW(where(), "centroid blob has shape ", shape_str(blobs_[0]->shape()), ", expected ",
               shape_str({shard_.count, D_}));
  }
}

void CocoLossLayer::reshape(const Blobs& bottom, const Blobs& top) {
  const int64_t m = bottom[0]->shape(0);
  if (bottom[0]->count(1) != D_)
    COCO_THROW(where(), "feature size changed from ", D_, " to ", bottom[0]->count(1));
  if (bottom[1]->count() != m)
    COCO_THROW(where(), "labels have ", bottom[1]->count(), " elements for ", m, " samples (shape ",
               shape_str(bottom[1]->shape()), ")");
  top[0]->reshape({1});
  if (top.size() > 1) top[1]->reshape({1});
}

void CocoLossLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  Communicator& comm = *ctx().comm;
  const int nranks = comm.size();
  const int64_t Ml = bottom[0]->shape(0), D = D_, Kr = shard_.count;
  const float* x = bottom[0]->cdata();  // (M_l, D)
  const float* y = bottom[1]->cdata();  // (M_l)
  const bool train = phase() == Phase::kTrain;
  const bool want_accuracy = top.size() > 1;

  for (int64_t i = 0; i < Ml; ++i) {
    const float v = y[i];
    if (!(v >= 0 && v < K_) || v != std::floor(v))
      COCO_THROW(where(), "label ", v, " of sample ", i, " is not a class in [0, ", K_, ")");
  }

  // 1. Batch sizes of every rank, then f = alpha * x̂ and labels from all ranks.
  std::vector<float> my_count{static_cast<float>(Ml)}, all_counts(nranks);
  comm.all_gather(my_count.data(), all_counts.data(), std::vector<int64_t>(nranks, 1));
  counts_.assign(nranks, 0);
  int64_t M = 0;
  for (int r = 0; r < nranks; ++r) {
    counts_[r] = static_cast<int64_t>(all_counts[r]);
    M += counts_[r];
  }
  if (M == 0) COCO_THROW(where(), "empty global batch");

  x_inv_norm_.resize(Ml);
  feat_send_.resize(Ml * D);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < Ml; ++i) {
    const float* xi = x + i * D;
    const float inv = 1.0f / std::sqrt(static_cast<float>(cpu_dot_double(D, xi, xi)) + kEps);
    x_inv_norm_[i] = inv;
    for (int64_t d = 0; d < D; ++d) feat_send_[i * D + d] = alpha_ * inv * xi[d];
  }
  f_all_.resize(M * D);
  labels_all_.resize(M);
  std::vector<int64_t> feat_counts(nranks);
  for (int r = 0; r < nranks; ++r) feat_counts[r] = counts_[r] * D;
  comm.all_gather(feat_send_.data(), f_all_.data(), feat_counts);
  comm.all_gather(y, labels_all_.data(), counts_);

  // Unit centroids (RENORMALIZE rewrites the parameter itself, as the seed did).
  float* c = blobs_[0]->mutable_data();
  c_hat_.resize(Kr * D);
  c_inv_norm_.resize(Kr);
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < Kr; ++k) {
    float* ck = c + k * D;
    const float inv = 1.0f / std::sqrt(static_cast<float>(cpu_dot_double(D, ck, ck)) + kEps);
    c_inv_norm_[k] = inv;
    for (int64_t d = 0; d < D; ++d) c_hat_[k * D + d] = ck[d] * inv;
    if (update_ == proto::CocoLossParameter::RENORMALIZE) {
      std::copy(&c_hat_[k * D], &c_hat_[k * D] + D, ck);
      c_inv_norm_[k] = 1.0f;
    }
  }

  // 2. Chunks of T local classes: z = f ĉᵀ (M, T), online softmax per row.
  const int64_t n_chunks = Kr == 0 ? 0 : (Kr + T_ - 1) / T_;
  const double chunk_bytes = static_cast<double>(M) * T_ * sizeof(float);
  const double budget = static_cast<double>(param_.coco_loss_param().logits_cache_mb()) * (1 << 20);
  cached_chunks_ = train ? std::min<int64_t>(n_chunks, static_cast<int64_t>(budget / chunk_bytes)) : 0;
  const int64_t slots = cached_chunks_ + (cached_chunks_ < n_chunks ? 1 : 0);
  logits_.resize(std::max<int64_t>(slots, 1) * M * T_);
  auto slot = [&](int64_t chunk) { return logits_.data() + std::min(chunk, cached_chunks_) * M * T_; };

  row_max_.assign(M, kNegInf);
  sum_target_.assign(2 * M, 0.f);
  float* row_sum = sum_target_.data();
  float* target = sum_target_.data() + M;
  best_.assign(M, kNegInf);
  best_class_.assign(M, 0.f);
  for (int64_t ch = 0; ch < n_chunks; ++ch) {
    const int64_t c0 = ch * T_, t = std::min(T_, Kr - c0);
    float* z = slot(ch);
    cpu_gemm(Trans::kNo, Trans::kYes, M, t, D, 1.f, f_all_.data(), c_hat_.data() + c0 * D, 0.f, z);
    const int64_t first_class = shard_.start + c0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i) {
      const float* zi = z + i * t;
      float cm = kNegInf;
      int64_t arg = 0;
      for (int64_t j = 0; j < t; ++j)
        if (zi[j] > cm) cm = zi[j], arg = j;
      const float nm = std::max(row_max_[i], cm);
      double s = static_cast<double>(row_sum[i]) * std::exp(static_cast<double>(row_max_[i]) - nm);
      for (int64_t j = 0; j < t; ++j) s += std::exp(static_cast<double>(zi[j]) - nm);
      row_sum[i] = static_cast<float>(s);
      row_max_[i] = nm;
      const int64_t yl = static_cast<int64_t>(labels_all_[i]) - first_class;
      if (yl >= 0 && yl < t) target[i] += zi[yl];
      if (cm > best_[i]) best_[i] = cm, best_class_[i] = static_cast<float>(first_class + arg);
    }
  }

  // 3. Join the ranks: MAX of row maxima, rescale, SUM of [sums, targets].
  std::vector<float> local_max(row_max_);
  comm.all_reduce(row_max_.data(), M, ReduceOp::kMax);
  for (int64_t i = 0; i < M; ++i)
    row_sum[i] = static_cast<float>(row_sum[i] * std::exp(static_cast<double>(local_max[i]) - row_max_[i]));
  comm.all_reduce(sum_target_.data(), 2 * M, ReduceOp::kSum);

  // 4. Loss, the same on every rank.
  double loss = 0;
  for (int64_t i = 0; i < M; ++i) loss += std::log(static_cast<double>(row_sum[i])) + row_max_[i] - target[i];
  top[0]->mutable_data()[0] = static_cast<float>(loss / M);

  if (want_accuracy) {
    // The rank holding the global maximum names its class; ties go to the lowest class.
    std::vector<float> cand(M);
    for (int64_t i = 0; i < M; ++i)
      cand[i] = best_[i] == row_max_[i] ? best_class_[i] : std::numeric_limits<float>::infinity();
    comm.all_reduce(cand.data(), M, ReduceOp::kMin);
    int64_t correct = 0;
    for (int64_t i = 0; i < M; ++i) correct += cand[i] == labels_all_[i];
    top[1]->mutable_data()[0] = static_cast<float>(correct) / M;
  }

  grad_ready_ = false;
  if (!train) return;

  // 5-7. Per chunk: G = (softmax - onehot)/M; centroid gradient Gᵀf (+ normalisation
  // Jacobian); partial feature gradient G ĉ over this rank's classes.
  grad_f_all_.assign(M * D, 0.f);
  grad_c_hat_.resize(T_ * D);
  float* dc = blobs_[0]->mutable_diff();
  const float invM = 1.0f / M;
  for (int64_t ch = 0; ch < n_chunks; ++ch) {
    const int64_t c0 = ch * T_, t = std::min(T_, Kr - c0);
    float* z = slot(ch);
    if (ch >= cached_chunks_)
      cpu_gemm(Trans::kNo, Trans::kYes, M, t, D, 1.f, f_all_.data(), c_hat_.data() + c0 * D, 0.f, z);
    const int64_t first_class = shard_.start + c0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i) {
      float* zi = z + i * t;
      const float m = row_max_[i];
      const float inv_s = 1.0f / row_sum[i];
      for (int64_t j = 0; j < t; ++j) zi[j] = std::exp(zi[j] - m) * inv_s * invM;
      const int64_t yl = static_cast<int64_t>(labels_all_[i]) - first_class;
      if (yl >= 0 && yl < t) zi[yl] -= invM;
    }
    // (t, D) = Gᵀ (t, M) · f (M, D)
    cpu_gemm(Trans::kYes, Trans::kNo, t, D, M, 1.f, z, f_all_.data(), 0.f, grad_c_hat_.data());
    const bool exact = update_ == proto::CocoLossParameter::EXACT;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < t; ++k) {
      const float* h = grad_c_hat_.data() + k * D;
      const float* u = c_hat_.data() + (c0 + k) * D;
      float* g = dc + (c0 + k) * D;
      if (exact) {
        const float inv = c_inv_norm_[c0 + k];
        const float uh = static_cast<float>(cpu_dot_double(D, u, h));
        for (int64_t d = 0; d < D; ++d) g[d] += loss_weight_ * inv * (h[d] - u[d] * uh);
      } else {
        for (int64_t d = 0; d < D; ++d) g[d] += loss_weight_ * h[d];
      }
    }
    // (M, D) += G (M, t) · ĉ (t, D)
    cpu_gemm(Trans::kNo, Trans::kNo, M, D, t, 1.f, z, c_hat_.data() + c0 * D, 1.f, grad_f_all_.data());
  }

  // 8. Each rank receives the summed gradient of its own rows; project to dL/dx.
  grad_x_.resize(Ml * D);
  comm.reduce_scatter(grad_f_all_.data(), grad_x_.data(), feat_counts);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < Ml; ++i) {
    const float* xi = x + i * D;
    float* g = grad_x_.data() + i * D;
    const float inv = x_inv_norm_[i];
    const float xg = static_cast<float>(cpu_dot_double(D, xi, g)) * inv;  // x̂·g
    for (int64_t d = 0; d < D; ++d) g[d] = alpha_ * inv * (g[d] - xi[d] * inv * xg);
  }
  grad_ready_ = true;
}

void CocoLossLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                                 const Blobs& bottom) {
  COCO_CHECK(grad_ready_, where(), "backward without a train-phase forward");
  const float w = top[0]->cdiff()[0];
  if (w != loss_weight_)
    COCO_THROW(where(), "top diff ", w, " differs from the loss_weight ", loss_weight_,
               " the centroid gradient was computed with");
  if (!propagate_down[0]) return;
  const int64_t n = bottom[0]->count();
  float* dx = bottom[0]->mutable_diff();
  for (int64_t i = 0; i < n; ++i) dx[i] = w * grad_x_[i];
}

}  // namespace coco
