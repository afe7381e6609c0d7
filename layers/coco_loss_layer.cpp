#include "layers/coco_loss_layer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/common.h"
#include "engine/filler.h"
#include "engine/math.h"
#include "engine/settings.h"

#if COCO_WITH_CUDA
#include "engine/cuda_math.h"
#include "engine/cuda_runtime.h"
#include "layers/coco_loss_cuda.h"
#endif

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
  validate_coco_loss(p, where() + "coco_loss_param");
  K_ = p.num_output();
  update_ = p.centroid_update();
  cosine_ = p.logit_type() == proto::CocoLossParameter::COSINE;
  margin_type_ = p.margin_type();
  margin_ = p.margin();
  if (!cosine_) {
    if (margin_type_ != proto::CocoLossParameter::NONE)
      COCO_THROW(where(), "margins need cosine logits (logit_type COSINE)");
    if (p.has_scale() || p.auto_scale()) COCO_THROW(where(), "INNER_PRODUCT logits take no scale");
    if (update_ != proto::CocoLossParameter::EXACT) COCO_THROW(where(), "INNER_PRODUCT logits have no centroid_update");
  }
  if (!cosine_) {
    alpha_ = 1;
  } else if (p.auto_scale()) {
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
  // The CUDA scratch follows the net's device; forward sizes it (M is global).
  const Device dev = bottom[0]->device();
  for (Tensor* t : {&d_counts_, &d_x_inv_norm_, &d_f_all_, &d_labels_all_, &d_c_inv_norm_, &d_c_hat_, &d_logits_,
                    &d_row_max_, &d_local_max_, &d_sum_target_, &d_best_, &d_best_class_, &d_raw_max_, &d_cand_,
                    &d_grad_f_all_, &d_grad_x_, &d_grad_c_hat_})
    t->set_device(dev);
}

float CocoLossLayer::apply_margin(float z) const {
  switch (margin_type_) {
    case proto::CocoLossParameter::COSFACE: return z - alpha_ * margin_;
    case proto::CocoLossParameter::ARCFACE: {
      const float cos_t = std::clamp(z / alpha_, -1.f, 1.f);
      if (cos_t > std::cos(static_cast<float>(M_PI) - margin_)) {
        const float sin_t = std::sqrt(std::max(0.f, 1.f - cos_t * cos_t));
        return alpha_ * (cos_t * std::cos(margin_) - sin_t * std::sin(margin_));
      }
      return alpha_ * (cos_t - margin_ * std::sin(margin_));
    }
    default: return z;
  }
}

float CocoLossLayer::margin_slope(float z) const {
  if (margin_type_ != proto::CocoLossParameter::ARCFACE) return 1.f;
  const float cos_t = std::clamp(z / alpha_, -1.f, 1.f);
  if (cos_t <= std::cos(static_cast<float>(M_PI) - margin_)) return 1.f;
  // d cos(theta + m) / d cos(theta) = cos m + sin m * cos(theta) / sin(theta)
  const float sin_t = std::max(std::sqrt(std::max(0.f, 1.f - cos_t * cos_t)), 1e-6f);
  return std::cos(margin_) + std::sin(margin_) * cos_t / sin_t;
}

namespace {

// exp(x) for x <= 88 (softmax terms, mostly after subtracting the row max), written so
// the compiler vectorises it: 2^k * p(r) with a degree-6 polynomial on
// r in [-ln2/2, ln2/2]; relative error about 2e-7 (float round-off). Underflows
// to 0 below -87.
inline float exp_nonpositive(float x) {
  x = std::max(x, -87.f);
  // Round to nearest by adding and removing 1.5 * 2^23 (vectorises without SSE4.1).
  const float k = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;
  const float r = x - k * 0.693145751953125f - k * 1.428606765330187045e-06f;
  float p = 1.f / 720;
  p = p * r + 1.f / 120;
  p = p * r + 1.f / 24;
  p = p * r + 1.f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  int32_t bits;
  // k < 128 for every x <= 88; a NaN (or +Inf) logit would make the int conversion
  // undefined: it takes 128 instead, and the NaN still propagates through p.
  const float two_k = k < 128.f ? k : 128.f;
  bits = (static_cast<int32_t>(two_k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

}  // namespace

void CocoLossLayer::unit_centroids(int64_t c0, int64_t t) {
  const float* c = blobs_[0]->cdata();
  const int64_t D = D_;
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < t; ++k) {
    const float* ck = c + (c0 + k) * D;
    float* u = c_hat_.data() + k * D;
    const float inv = cosine_ ? c_inv_norm_[c0 + k] : 1.f;
    for (int64_t d = 0; d < D; ++d) u[d] = ck[d] * inv;
  }
}

void CocoLossLayer::forward_cpu(const Blobs& bottom, const Blobs& top) {
  Communicator& comm = *ctx().comm;
  const int nranks = comm.size();
  const int64_t Ml = bottom[0]->shape(0), D = D_, Kr = shard_.count;
  const float* x = bottom[0]->cdata();  // (M_l, D)
  const float* y = bottom[1]->cdata();  // (M_l)
  const bool train = phase() == Phase::kTrain;
  const bool want_accuracy = top.size() > 1;
  const bool margin = margin_type_ != proto::CocoLossParameter::NONE;

  for (int64_t i = 0; i < Ml; ++i) {
    const float v = y[i];
    if (!(v >= 0 && v < K_) || v != std::floor(v))
      COCO_THROW(where(), "label ", v, " of sample ", i, " is not a class in [0, ", K_, ")");
  }

  // 1. Batch sizes of every rank, then f (alpha * x̂, or x) and labels from all ranks.
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
    const float inv = cosine_ ? 1.0f / std::sqrt(static_cast<float>(cpu_dot_double(D, xi, xi)) + kEps) : 1.f;
    x_inv_norm_[i] = inv;
    const float s = cosine_ ? alpha_ * inv : 1.f;
    for (int64_t d = 0; d < D; ++d) feat_send_[i * D + d] = s * xi[d];
  }
  f_all_.resize(M * D);
  labels_all_.resize(M);
  std::vector<int64_t> feat_counts(nranks);
  for (int r = 0; r < nranks; ++r) feat_counts[r] = counts_[r] * D;
  comm.all_gather(feat_send_.data(), f_all_.data(), feat_counts);
  comm.all_gather(y, labels_all_.data(), counts_);

  // Centroid norms (RENORMALIZE rewrites the parameter itself, as the seed did).
  // Unit centroids are made per chunk: no K_r x D copy.
  float* c = blobs_[0]->mutable_data();
  c_inv_norm_.resize(Kr);
  const bool renorm = cosine_ && update_ == proto::CocoLossParameter::RENORMALIZE;
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < Kr; ++k) {
    float* ck = c + k * D;
    const float inv = cosine_ ? 1.0f / std::sqrt(static_cast<float>(cpu_dot_double(D, ck, ck)) + kEps) : 1.f;
    c_inv_norm_[k] = inv;
    if (renorm) {
      for (int64_t d = 0; d < D; ++d) ck[d] *= inv;
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
  c_hat_.resize(T_ * D);
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
    unit_centroids(c0, t);
    cpu_gemm(Trans::kNo, Trans::kYes, M, t, D, 1.f, f_all_.data(), c_hat_.data(), 0.f, z);
    const int64_t first_class = shard_.start + c0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i) {
      const float* zi = z + i * t;
      const int64_t yl = static_cast<int64_t>(labels_all_[i]) - first_class;
      const bool has_target = yl >= 0 && yl < t;
      // Raw maximum (accuracy) and the maximum with the target's margin (softmax).
      float cm = kNegInf;
#pragma omp simd reduction(max : cm)
      for (int64_t j = 0; j < t; ++j) cm = std::max(cm, zi[j]);
      const float zt = has_target ? apply_margin(zi[yl]) : 0.f;
      float mm = cm;
      if (has_target && margin) {
        mm = kNegInf;
        for (int64_t j = 0; j < t; ++j) mm = std::max(mm, j == yl ? zt : zi[j]);
      }
      const float nm = std::max(row_max_[i], mm);
      float s = 0.f;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < t; ++j) s += exp_nonpositive(zi[j] - nm);
      if (has_target && margin) s += exp_nonpositive(zt - nm) - exp_nonpositive(zi[yl] - nm);
      row_sum[i] = static_cast<float>(static_cast<double>(row_sum[i]) * std::exp(static_cast<double>(row_max_[i]) - nm) + s);
      row_max_[i] = nm;
      if (has_target) target[i] += zt;
      if (want_accuracy && cm > best_[i]) {
        int64_t arg = 0;
        // The first maximum, found only when it improves; bounded, since with NaN
        // logits the vectorised max need not equal any entry (it read past the row).
        while (arg + 1 < t && zi[arg] != cm) ++arg;
        best_[i] = cm;
        best_class_[i] = static_cast<float>(first_class + arg);
      }
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
    // Top-1 of the raw logits. The best rank names its class; ties go to the lowest.
    std::vector<float> raw_max(best_);
    comm.all_reduce(raw_max.data(), M, ReduceOp::kMax);
    std::vector<float> cand(M);
    for (int64_t i = 0; i < M; ++i)
      cand[i] = best_[i] == raw_max[i] ? best_class_[i] : std::numeric_limits<float>::infinity();
    comm.all_reduce(cand.data(), M, ReduceOp::kMin);
    int64_t correct = 0;
    for (int64_t i = 0; i < M; ++i) correct += cand[i] == labels_all_[i];
    top[1]->mutable_data()[0] = static_cast<float>(correct) / M;
  }

  grad_ready_ = false;
  if (!train) return;

  // 5-7. Per chunk: G = (softmax - onehot)/M (times the margin's slope at the
  // target); centroid gradient Gᵀf (+ normalisation Jacobian); partial feature
  // gradient G ĉ over this rank's classes.
  grad_f_all_.assign(M * D, 0.f);
  grad_c_hat_.resize(T_ * D);
  float* dc = blobs_[0]->mutable_diff();
  const float invM = 1.0f / M;
  for (int64_t ch = 0; ch < n_chunks; ++ch) {
    const int64_t c0 = ch * T_, t = std::min(T_, Kr - c0);
    float* z = slot(ch);
    unit_centroids(c0, t);
    if (ch >= cached_chunks_)
      cpu_gemm(Trans::kNo, Trans::kYes, M, t, D, 1.f, f_all_.data(), c_hat_.data(), 0.f, z);
    const int64_t first_class = shard_.start + c0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i) {
      float* zi = z + i * t;
      const float m = row_max_[i];
      const float scale = invM / row_sum[i];
      const int64_t yl = static_cast<int64_t>(labels_all_[i]) - first_class;
      const bool has_target = yl >= 0 && yl < t;
      const float raw_target = has_target ? zi[yl] : 0.f;
#pragma omp simd
      for (int64_t j = 0; j < t; ++j) zi[j] = exp_nonpositive(zi[j] - m) * scale;
      if (has_target) {
        const float p = margin ? exp_nonpositive(apply_margin(raw_target) - m) * scale : zi[yl];
        zi[yl] = (p - invM) * margin_slope(raw_target);
      }
    }
    // (t, D) = Gᵀ (t, M) · f (M, D)
    cpu_gemm(Trans::kYes, Trans::kNo, t, D, M, 1.f, z, f_all_.data(), 0.f, grad_c_hat_.data());
    const bool exact = cosine_ && update_ == proto::CocoLossParameter::EXACT;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < t; ++k) {
      const float* h = grad_c_hat_.data() + k * D;
      const float* u = c_hat_.data() + k * D;
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
    cpu_gemm(Trans::kNo, Trans::kNo, M, D, t, 1.f, z, c_hat_.data(), 1.f, grad_f_all_.data());
  }

  // 8. Each rank receives the summed gradient of its own rows; project to dL/dx.
  grad_x_.resize(Ml * D);
  comm.reduce_scatter(grad_f_all_.data(), grad_x_.data(), feat_counts);
  if (!cosine_) {
    grad_ready_ = true;
    return;  // f = x: the feature gradient is dL/dx
  }
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

#if COCO_WITH_CUDA

void CocoLossLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  Communicator& comm = *ctx().comm;
  const int nranks = comm.size(), rank = comm.rank();
  const int64_t Ml = bottom[0]->shape(0), D = D_, Kr = shard_.count;
  const float* x = bottom[0]->cdata();  // (M_l, D), device
  const float* y = bottom[1]->cdata();  // (M_l), device
  const bool train = phase() == Phase::kTrain;
  const bool want_accuracy = top.size() > 1;
  const cuda::Stream st = cuda::stream();
  COCO_CHECK(blobs_[0]->device() == Device::kCUDA, where(), "centroids are on the CPU, features on the GPU");
  // Labels are checked on the device: a label outside [0, K) makes the loss NaN
  // (the CPU path throws; here that would need a copy to the host every step).

  // 1. Batch sizes of every rank (one rank: no communication), then f and the
  // labels, written at this rank's offset and gathered in place.
  counts_.assign(nranks, 0);
  if (nranks == 1) {
    counts_[0] = Ml;
  } else {
    // GEMM shapes are host values: the N batch sizes are the one thing this head
    // reads back (a short last batch may sit on any rank).
    d_counts_.reshape({nranks});
    cuda_set(1, static_cast<float>(Ml), d_counts_.data() + rank);
    comm.all_gather(d_counts_.data() + rank, d_counts_.data(), std::vector<int64_t>(nranks, 1));
    std::vector<float> host(nranks);
    coco_head_read_to_host(host.data(), d_counts_.data(), nranks, st);
    for (int r = 0; r < nranks; ++r) counts_[r] = static_cast<int64_t>(host[r]);
  }
  int64_t M = 0, offset = 0;
  for (int r = 0; r < nranks; ++r) {
    if (r < rank) offset += counts_[r];
    M += counts_[r];
  }
  if (M == 0) COCO_THROW(where(), "empty global batch");
  COCO_CHECK(counts_[rank] == Ml, where(), "rank ", rank, " gathered batch size ", counts_[rank], ", has ", Ml);

  d_x_inv_norm_.reshape({Ml});
  d_f_all_.reshape({M, D});
  d_labels_all_.reshape({M});
  float* f_all = d_f_all_.data();
  float* labels_all = d_labels_all_.data();
  coco_head_features(f_all + offset * D, d_x_inv_norm_.data(), x, Ml, D, alpha_, cosine_, st);
  if (Ml > 0) cuda_copy(Ml, y, labels_all + offset);
  std::vector<int64_t> feat_counts(nranks);
  for (int r = 0; r < nranks; ++r) feat_counts[r] = counts_[r] * D;
  comm.all_gather(f_all + offset * D, f_all, feat_counts);
  comm.all_gather(labels_all + offset, labels_all, counts_);

  // Centroid norms (RENORMALIZE rewrites the parameter itself, as the seed did).
  // Unit centroids are made per chunk (EXACT); with RENORMALIZE or INNER_PRODUCT
  // the centroid rows are the ĉ rows and are used in place.
  float* c = blobs_[0]->mutable_data();
  const bool renorm = cosine_ && update_ == proto::CocoLossParameter::RENORMALIZE;
  const bool exact = cosine_ && update_ == proto::CocoLossParameter::EXACT;
  d_c_inv_norm_.reshape({Kr});
  if (cosine_) coco_head_centroid_norms(c, d_c_inv_norm_.data(), Kr, D, cosine_, renorm, st);
  const int64_t t_max = std::max<int64_t>(std::min(T_, Kr), 1);  // the widest chunk of this shard
  d_c_hat_.reshape({exact ? t_max : 0, D});
  auto chunk_centroids = [&](int64_t c0, int64_t t) -> const float* {
    if (!exact) return c + c0 * D;
    coco_head_unit_centroids(d_c_hat_.data(), c + c0 * D, d_c_inv_norm_.data() + c0, t, D, st);
    return d_c_hat_.data();
  };

  CocoMarginParams mp;
  mp.alpha = alpha_;
  mp.margin = margin_;
  switch (margin_type_) {
    case proto::CocoLossParameter::COSFACE: mp.kind = CocoMarginKind::kCosFace; break;
    case proto::CocoLossParameter::ARCFACE: mp.kind = CocoMarginKind::kArcFace; break;
    default: mp.kind = CocoMarginKind::kNone; break;
  }
  mp.cos_m = std::cos(margin_);
  mp.sin_m = std::sin(margin_);
  mp.threshold = std::cos(static_cast<float>(M_PI) - margin_);
  mp.m_sin_m = margin_ * std::sin(margin_);

  // 2. Chunks of T local classes: z = f ĉᵀ (M, T), online softmax per row. The
  // cache budget counts M x T floats per chunk, as on the CPU (the same
  // cached_chunks()); each slot is padded to 64 floats so every GEMM output starts
  // equally aligned (cuBLAS then picks the same kernel for cached and recomputed).
  const int64_t n_chunks = Kr == 0 ? 0 : (Kr + T_ - 1) / T_;
  const double chunk_bytes = static_cast<double>(M) * T_ * sizeof(float);
  const double budget = static_cast<double>(param_.coco_loss_param().logits_cache_mb()) * (1 << 20);
  cached_chunks_ = train ? std::min<int64_t>(n_chunks, static_cast<int64_t>(budget / chunk_bytes)) : 0;
  const int64_t slots = cached_chunks_ + (cached_chunks_ < n_chunks ? 1 : 0);
  const int64_t slot_stride = (M * t_max + 63) / 64 * 64;
  d_logits_.reshape({std::max<int64_t>(slots, 1) * slot_stride});
  auto slot = [&](int64_t chunk) { return d_logits_.data() + std::min(chunk, cached_chunks_) * slot_stride; };

  d_row_max_.reshape({M});
  d_local_max_.reshape({M});
  d_sum_target_.reshape({2 * M});
  d_best_.reshape({M});
  d_best_class_.reshape({M});
  float* row_max = d_row_max_.data();
  float* row_sum = d_sum_target_.data();
  float* target = d_sum_target_.data() + M;
  coco_head_init_stats(row_max, d_sum_target_.data(), d_best_.data(), d_best_class_.data(), M, st);
  for (int64_t ch = 0; ch < n_chunks; ++ch) {
    const int64_t c0 = ch * T_, t = std::min(T_, Kr - c0);
    float* z = slot(ch);
    const float* u = chunk_centroids(c0, t);
    cuda_gemm(Trans::kNo, Trans::kYes, M, t, D, 1.f, f_all, u, 0.f, z);
    coco_head_chunk_stats(row_max, row_sum, target, d_best_.data(), d_best_class_.data(), z, labels_all, M, t,
                          shard_.start + c0, want_accuracy, mp, st);
  }

  // 3. Join the ranks: MAX of row maxima, rescale, SUM of [sums, targets].
  cuda_copy(M, row_max, d_local_max_.data());
  comm.all_reduce(row_max, M, ReduceOp::kMax);
  coco_head_rescale_sums(row_sum, d_local_max_.data(), row_max, M, st);
  comm.all_reduce(d_sum_target_.data(), 2 * M, ReduceOp::kSum);

  // 4. Loss, the same on every rank, written on the device.
  coco_head_loss(top[0]->mutable_data(), row_sum, row_max, target, labels_all, M, K_, st);

  if (want_accuracy) {
    // Top-1 of the raw logits. The best rank names its class; ties go to the lowest.
    d_raw_max_.reshape({M});
    d_cand_.reshape({M});
    cuda_copy(M, d_best_.data(), d_raw_max_.data());
    comm.all_reduce(d_raw_max_.data(), M, ReduceOp::kMax);
    coco_head_accuracy_candidates(d_cand_.data(), d_best_.data(), d_raw_max_.data(), d_best_class_.data(), M, st);
    comm.all_reduce(d_cand_.data(), M, ReduceOp::kMin);
    coco_head_accuracy(top[1]->mutable_data(), d_cand_.data(), labels_all, M, st);
  }

  grad_ready_ = false;
  d_grad_x_ptr_ = nullptr;
  if (!train) return;

  // 5-7. Per chunk: G = (softmax - onehot)/M (times the margin's slope at the
  // target) in place of the logits; centroid gradient Gᵀf (+ normalisation
  // Jacobian) into the parameter diff; partial feature gradient G ĉ.
  d_grad_f_all_.reshape({M, D});
  d_grad_c_hat_.reshape({t_max, D});
  float* grad_f_all = d_grad_f_all_.data();
  float* dc = blobs_[0]->mutable_diff();
  const float invM = 1.0f / M;
  for (int64_t ch = 0; ch < n_chunks; ++ch) {
    const int64_t c0 = ch * T_, t = std::min(T_, Kr - c0);
    float* z = slot(ch);
    const float* u = chunk_centroids(c0, t);
    if (ch >= cached_chunks_) cuda_gemm(Trans::kNo, Trans::kYes, M, t, D, 1.f, f_all, u, 0.f, z);
    coco_head_softmax_grad(z, row_max, row_sum, labels_all, M, t, shard_.start + c0, invM, mp, st);
    // (t, D) = Gᵀ (t, M) · f (M, D)
    cuda_gemm(Trans::kYes, Trans::kNo, t, D, M, 1.f, z, f_all, 0.f, d_grad_c_hat_.data());
    coco_head_centroid_grad(dc + c0 * D, d_grad_c_hat_.data(), u, d_c_inv_norm_.data() + c0, t, D, loss_weight_,
                            exact, st);
    // (M, D) (+)= G (M, t) · ĉ (t, D); the first chunk writes.
    cuda_gemm(Trans::kNo, Trans::kNo, M, D, t, 1.f, z, u, ch == 0 ? 0.f : 1.f, grad_f_all);
  }
  if (n_chunks == 0) cuda_set(M * D, 0.f, grad_f_all);  // no classes on this rank

  // 8. Each rank receives the summed gradient of its own rows (one rank: in place);
  // project to dL/dx.
  float* grad_x = grad_f_all;
  if (nranks > 1) {
    d_grad_x_.reshape({Ml, D});
    grad_x = d_grad_x_.data();
  }
  comm.reduce_scatter(grad_f_all, grad_x, feat_counts);
  if (cosine_) coco_head_project_features(grad_x, x, d_x_inv_norm_.data(), Ml, D, alpha_, st);
  d_grad_x_ptr_ = grad_x;
  grad_ready_ = true;
}

void CocoLossLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down,
                                  const Blobs& bottom) {
  COCO_CHECK(grad_ready_ && d_grad_x_ptr_ != nullptr, where(), "backward without a train-phase forward");
  // The top diff must equal loss_weight (the centroid gradient was scaled by it in
  // forward); the CPU path checks that, here it would take a copy to the host, so
  // the feature gradient is scaled by the top diff as the device holds it.
  if (!propagate_down[0]) return;
  coco_head_scale_by_top_diff(bottom[0]->mutable_diff(), d_grad_x_ptr_, top[0]->cdiff(), bottom[0]->count(),
                              cuda::stream());
}

#endif  // COCO_WITH_CUDA

}  // namespace coco
