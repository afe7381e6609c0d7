#include "layers/coco_loss_layer.h"

#include <algorithm>
#include <cmath>

#include "engine/common.h"
#include "engine/filler.h"
#include "engine/settings.h"
#include "layers/coco_head_ops.h"
#include "layers/labels.h"

namespace coco {

double coco_auto_scale(int64_t K, double p) {
  COCO_CHECK(K >= 2, "auto scale needs at least 2 classes, got ", K);
  COCO_CHECK(p > 0 && p < 1, "target_probability must be in (0, 1), got ", p);
  const double k = static_cast<double>(K);
  const double a = (k - 1) / k * std::log((k - 1) * p / (1 - p));
  COCO_CHECK(a > 0, "auto scale is not positive (target_probability ", p, " too low for ", K, " classes)");
  return a;
}

namespace {

CocoMarginKind margin_kind(proto::CocoLossParameter::MarginType t) {
  switch (t) {
    case proto::CocoLossParameter::COSFACE: return CocoMarginKind::kCosFace;
    case proto::CocoLossParameter::ARCFACE: return CocoMarginKind::kArcFace;
    default: return CocoMarginKind::kNone;
  }
}

}  // namespace

void CocoLossLayer::set_scale(const proto::CocoLossParameter& p) {
  const bool cosine = p.logit_type() == proto::CocoLossParameter::COSINE;
  if (!cosine) {
    if (p.margin_type() != proto::CocoLossParameter::NONE)
      COCO_THROW(where(), "margins need cosine logits (logit_type COSINE)");
    if (p.has_scale() || p.auto_scale()) COCO_THROW(where(), "INNER_PRODUCT logits take no scale");
    if (p.centroid_update() != proto::CocoLossParameter::EXACT)
      COCO_THROW(where(), "INNER_PRODUCT logits have no centroid_update");
    alpha_ = 1;
  } else if (p.auto_scale()) {
    if (p.has_scale()) COCO_THROW(where(), "set either scale or auto_scale, not both");
    alpha_ = static_cast<float>(coco_auto_scale(K_, p.target_probability()));
  } else {
    if (!p.has_scale() || !(p.scale() > 0))
      COCO_THROW(where(), "needs a positive scale, or auto_scale: true with target_probability");
    alpha_ = p.scale();
  }
}

// One stream per global class row from one base seed, so a shard's initial rows
// equal the same rows of an unsharded run.
void CocoLossLayer::init_centroids(const proto::CocoLossParameter& p, uint64_t base) {
  if (!blobs_.empty()) {
    if (blobs_[0]->shape() != Shape{shard_.count, D_})
      COCO_THROW(where(), "centroid blob has shape ", shape_str(blobs_[0]->shape()), ", expected ",
                 shape_str({shard_.count, D_}));
    return;
  }
  // A sampling head's blob never holds a diff, and a test-phase head's needs none:
  // dropped before the shard is allocated, so the start-up touches no K_r x D diff.
  // (A test net still makes its own shard until share_params_from replaces it.)
  auto blob = std::make_shared<Blob>();
  if (head_.samples() || phase() == Phase::kTest) blob->drop_diff();
  blob->reshape({shard_.count, D_});
  blobs_.push_back(blob);
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
}

void CocoLossLayer::layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) {
  const auto& p = param_.coco_loss_param();
  if (!param_.has_coco_loss_param() || p.num_output() == 0)
    COCO_THROW(where(), "coco_loss_param.num_output (the number of classes) must be set and positive");
  validate_coco_loss(p, where() + "coco_loss_param");
  K_ = p.num_output();
  set_scale(p);
  loss_weight_ = param_.loss_weight_size() > 0 ? param_.loss_weight(0) : 1.0f;
  D_ = bottom[0]->count(1);
  if (D_ == 0) COCO_THROW(where(), "features have no elements per sample: shape ", shape_str(bottom[0]->shape()));
  const Communicator* comm = ctx().comm;
  COCO_CHECK(comm != nullptr, "CocoLoss needs a communicator");
  shard_ = shard_range(K_, comm->rank(), comm->size());
  // Inside the head a label is a column of this rank's shard, held as a float.
  check_shard_fits(K_, comm->size(), where());

  CocoHeadConfig cfg;
  cfg.K = K_;
  cfg.D = D_;
  cfg.chunk = p.chunk_size();
  cfg.cache_mb = p.logits_cache_mb();
  cfg.alpha = alpha_;
  cfg.cosine = p.logit_type() == proto::CocoLossParameter::COSINE;
  cfg.renormalize = cfg.cosine && p.centroid_update() == proto::CocoLossParameter::RENORMALIZE;
  cfg.margin = make_margin_params(margin_kind(p.margin_type()), alpha_, p.margin());
  cfg.shard = shard_;
  cfg.fixed_shift = p.softmax_shift() == proto::CocoLossParameter::AUTO;
  cfg.sample_rate = phase() == Phase::kTrain ? p.sample_rate() : 1.0;
  if (cfg.sample_rate < 1 && cfg.renormalize)
    COCO_THROW(where(), "sample_rate < 1 needs centroid_update: EXACT (RENORMALIZE rewrites every centroid row "
               "each step, and a sampled step holds only some of them)");
  head_ = CocoHead(cfg, where());
  init_centroids(p, rng());
  if (head_.samples()) blobs_[0]->drop_diff();  // the gradient comes as sampled rows (row_gradient)
}

Layer::RowGradient CocoLossLayer::row_gradient(int) const {
  if (!head_.samples()) return {};
  return {head_.sampled_rows(), head_.sampled_grad()};
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
  head_.set_device(bottom[0]->device());  // forward sizes the scratch (M is global)
}

void CocoLossLayer::forward_with(const CocoHeadOps& ops, const Blobs& bottom, const Blobs& top) {
  if (blobs_[0]->device() != bottom[0]->device())
    COCO_THROW(where(), "centroids and features are on different devices");
  const int64_t Ml = bottom[0]->shape(0);
  // On the GPU a bad label makes the loss NaN instead: looking would cost a copy to
  // the host every step.
  if (bottom[1]->device() == Device::kCPU) {
    const int64_t bad = first_label_outside(*bottom[1], Ml, K_);
    if (bad >= 0)
      COCO_THROW(where(), "label ", label_str(*bottom[1], bad), " of sample ", bad, " is not a class in [0, ", K_,
                 ")");
  }
  CocoHeadIo io;
  io.x = bottom[0]->cdata();
  io.labels = int32_labels(*bottom[1], label_ids_);
  io.Ml = Ml;
  io.M = ctx().global_batch;
  io.centroids = blobs_[0]->mutable_data();
  // A sampling head writes its own rows' gradient; a centroid blob that came back
  // with a diff (a checkpoint's blob put in its place) gives it up again.
  if (head_.samples() && blobs_[0]->has_diff()) blobs_[0]->drop_diff();
  io.centroid_diff = head_.samples() ? nullptr : blobs_[0]->mutable_diff();
  io.seed = ctx().seed;
  io.iter = ctx().iter;
  io.loss = top[0]->mutable_data();
  io.accuracy = top.size() > 1 ? top[1]->mutable_data() : nullptr;
  io.precision = ctx().precision;
  io.loss_scale = ctx().loss_scale;
  // The top's diff will be loss_weight * loss_scale (Net::backward): the centroid
  // gradient is scaled alike, and the solver divides both back.
  grad_ = head_.forward(io, *ctx().comm, ops, phase() == Phase::kTrain, loss_weight_ * ctx().loss_scale);
}

// dx = w dx_unit with w the top's diff, which must be the loss_weight the centroid
// gradient was scaled with in forward (one float read back on a GPU; the device is
// idle here anyway, since the net read the loss after the forward).
void CocoLossLayer::backward_with(const CocoHeadOps& ops, const Blobs& top, const std::vector<bool>& propagate_down,
                                  const Blobs& bottom) {
  COCO_CHECK(grad_.ready, where(), "backward without a train-phase forward");
  float w = 0;
  ops.read_to_host(&w, top[0]->cdiff(), 1);
  if (w != grad_.loss_weight)
    COCO_THROW(where(), "top diff ", w, " differs from the loss_weight ", grad_.loss_weight,
               " the centroid gradient was computed with");
  if (!propagate_down[0]) return;
  ops.scale_by_top_diff(bottom[0]->mutable_diff(), grad_.dx_unit, top[0]->cdiff(), bottom[0]->count());
}

void CocoLossLayer::forward_cpu(const Blobs& bottom, const Blobs& top) { forward_with(cpu_head_ops(), bottom, top); }

void CocoLossLayer::backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  backward_with(cpu_head_ops(), top, propagate_down, bottom);
}

#if COCO_WITH_CUDA
void CocoLossLayer::forward_cuda(const Blobs& bottom, const Blobs& top) {
  forward_with(*cuda_head_ops(cuda::stream()), bottom, top);
}

void CocoLossLayer::backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  backward_with(*cuda_head_ops(cuda::stream()), top, propagate_down, bottom);
}
#else
COCO_CUDA_STUBS(CocoLossLayer)
#endif

}  // namespace coco
