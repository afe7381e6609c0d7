#include "engine/net.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <set>
#include <sstream>

#include "engine/common.h"
#include "engine/cuda_math.h"
#include "engine/cuda_runtime.h"
#include "engine/device_memory.h"
#include "engine/insert_splits.h"

namespace coco {

bool layer_included(const proto::LayerParameter& layer, const proto::NetState& state) {
  auto meets = [&](const proto::NetStateRule& r) {
    if (r.has_phase() && r.phase() != state.phase()) return false;
    if (r.has_min_level() && state.level() < r.min_level()) return false;
    if (r.has_max_level() && state.level() > r.max_level()) return false;
    for (const auto& s : r.stage())
      if (std::find(state.stage().begin(), state.stage().end(), s) == state.stage().end()) return false;
    for (const auto& s : r.not_stage())
      if (std::find(state.stage().begin(), state.stage().end(), s) != state.stage().end()) return false;
    return true;
  };
  if (layer.include_size() > 0) {
    for (const auto& r : layer.include())
      if (meets(r)) return true;
    return false;
  }
  for (const auto& r : layer.exclude())
    if (meets(r)) return false;
  return true;
}

Shape blob_shape_from_proto(const proto::BlobProto& b) {
  if (b.has_shape()) return Shape(b.shape().dim().begin(), b.shape().dim().end());
  if (b.has_num() || b.has_channels() || b.has_height() || b.has_width())
    return Shape{b.num(), b.channels(), b.height(), b.width()};
  return Shape{static_cast<int64_t>(b.data_size())};
}

proto::NetParameter layers_for_phase(const proto::NetParameter& in, Phase phase) {
  proto::NetState state = in.state();
  state.set_phase(phase == Phase::kTrain ? proto::TRAIN : proto::TEST);
  proto::NetParameter out = in;
  out.clear_layer();
  for (const auto& l : in.layer())
    if (layer_included(l, state)) *out.add_layer() = l;
  return out;
}

namespace {
// Legacy `input` with `input_dim` (4 per input) or `input_shape` as one Input layer.
proto::LayerParameter legacy_input_layer(const proto::NetParameter& in, const std::string& origin) {
  proto::LayerParameter l;
  l.set_name("input");
  l.set_type("Input");
  const bool dims = in.input_dim_size() > 0, shapes = in.input_shape_size() > 0;
  if (dims && shapes) COCO_THROW(origin, ": give input shapes with input_dim or input_shape, not both");
  if (dims && in.input_dim_size() != 4 * in.input_size())
    COCO_THROW(origin, ": ", in.input_size(), " inputs need ", 4 * in.input_size(), " input_dim values, got ",
               in.input_dim_size());
  if (shapes && in.input_shape_size() != in.input_size())
    COCO_THROW(origin, ": ", in.input_size(), " inputs need as many input_shape entries, got ", in.input_shape_size());
  if (!dims && !shapes) COCO_THROW(origin, ": inputs declared without input_dim or input_shape");
  for (int i = 0; i < in.input_size(); ++i) {
    l.add_top(in.input(i));
    auto* s = l.mutable_input_param()->add_shape();
    if (dims)
      for (int d = 0; d < 4; ++d) s->add_dim(in.input_dim(4 * i + d));
    else
      *s = in.input_shape(i);
  }
  return l;
}
}  // namespace

proto::NetParameter prepare_net(const proto::NetParameter& in, Phase phase, const std::string& origin) {
  proto::NetParameter p;
  p.set_name(in.name());
  p.set_force_backward(in.force_backward());
  if (in.input_size() > 0) *p.add_layer() = legacy_input_layer(in, origin);
  const proto::NetParameter admitted = layers_for_phase(in, phase);
  for (const auto& l : admitted.layer()) {
    if (l.type().empty()) COCO_THROW(origin, ": layer '", l.name(), "' has no type");
    *p.add_layer() = l;
  }
  return insert_splits(p, origin);
}

Net::Net(const proto::NetParameter& param, Phase phase, Communicator* comm, uint64_t seed,
         const std::string& origin)
    : name_(param.name()), origin_(origin), rng_(seed) {
  COCO_CHECK(comm != nullptr, "Net needs a communicator");
  ctx_.phase = phase;
  ctx_.seed = seed;
  ctx_.comm = comm;
  const proto::NetParameter p = prepare_net(param, phase, origin);
  GradientWanted wanted;
  for (const auto& lp : p.layer()) append_layer(lp, p.force_backward(), &wanted);
  classify_outputs(p);
  prune_backward();
}

void Net::append_layer(const proto::LayerParameter& lp, bool force_backward, GradientWanted* wanted) {
  std::unique_ptr<Layer> layer;
  try {
    layer = layer_registry().create(lp);
  } catch (const Error& e) {
    COCO_THROW(origin_, ": ", e.what());
  }
  std::vector<Blob*> bottom, top;
  for (const auto& b : lp.bottom()) bottom.push_back(append_bottom(b));
  for (const auto& t : lp.top()) top.push_back(append_top(lp, *layer, t));
  try {
    layer->setup(bottom, top, &ctx_, rng_);
  } catch (const Error& e) {
    COCO_THROW(origin_, ": ", e.what());
  }
  layers_.push_back(std::move(layer));
  bottoms_.push_back(bottom);
  tops_.push_back(top);
  const size_t li = layers_.size() - 1;
  if (layers_[li]->is_input())
    for (int t = 0; t < lp.top_size(); ++t) {
      inputs_.push_back(top[t]);
      input_names_.push_back(lp.top(t));
    }
  const bool learns = append_params(lp, *layers_[li]);
  decide_backward(li, lp, learns, force_backward, wanted);
  append_losses(lp, *layers_[li], top);
}

// prepare_net made sure an earlier layer (or the input) produced it.
Blob* Net::append_bottom(const std::string& name) { return blob_by_name_.at(name); }

Blob* Net::append_top(const proto::LayerParameter& lp, const Layer& layer, const std::string& name) {
  if (std::find(lp.bottom().begin(), lp.bottom().end(), name) != lp.bottom().end()) {
    if (!layer.allows_in_place())
      COCO_THROW(origin_, ": layer '", lp.name(), "' (", lp.type(), ") cannot work in place (top '", name,
                 "' is also its bottom)");
    return blob_by_name_.at(name);
  }
  if (blob_by_name_.count(name))
    COCO_THROW(origin_, ": top blob '", name, "' of layer '", lp.name(), "' is produced by more than one layer");
  blobs_.push_back(std::make_shared<Blob>());
  blob_by_name_[name] = blobs_.back().get();
  return blobs_.back().get();
}

bool Net::append_params(const proto::LayerParameter& lp, const Layer& layer) {
  bool learns = false;
  for (size_t i = 0; i < layer.blobs().size(); ++i) {
    const int k = static_cast<int>(i);
    ParamInfo info;
    info.blob = layer.blobs()[i];
    info.layer = lp.name();
    info.index = k;
    info.owner = &layer;
    if (k < lp.param_size()) {
      info.lr_mult = lp.param(k).lr_mult();
      info.decay_mult = lp.param(k).decay_mult();
    }
    info.learnable = layer.param_learnable(k) && info.lr_mult != 0;
    info.sharded = layer.param_sharded(k);
    if (info.sharded) {
      info.row_start = layer.shard_row_start(k);
      info.total_rows = layer.shard_total_rows(k);
    }
    learns = learns || info.learnable;
    params_.push_back(info);
  }
  return learns;
}

// A layer runs backward if it learns or a gradient flows through it to a bottom that
// wants one (a blob some learning layer wrote, or every blob under force_backward).
void Net::decide_backward(size_t li, const proto::LayerParameter& lp, bool learns, bool force_backward,
                          GradientWanted* wanted) {
  const Layer& layer = *layers_[li];
  std::vector<bool> prop(bottoms_[li].size(), false);
  bool needs = learns;
  for (size_t b = 0; b < prop.size(); ++b) {
    const int k = static_cast<int>(b);
    const bool want = ((*wanted)[bottoms_[li][b]] || force_backward) && layer.can_backward_to(k);
    const bool allowed = k >= lp.propagate_down_size() || lp.propagate_down(k);
    prop[b] = want && allowed;
    needs = needs || prop[b];
  }
  for (auto* t : tops_[li]) (*wanted)[t] = needs;
  propagate_down_.push_back(prop);
  need_backward_.push_back(needs);
}

// A top is a loss where the config weights it, or by default a loss layer's first top.
void Net::append_losses(const proto::LayerParameter& lp, const Layer& layer, const std::vector<Blob*>& top) {
  for (size_t t = 0; t < top.size(); ++t) {
    float w = static_cast<int>(t) < lp.loss_weight_size() ? lp.loss_weight(static_cast<int>(t))
                                                          : (layer.is_loss() && t == 0 ? 1.f : 0.f);
    if (w != 0) losses_.push_back({top[t], w, layer.loss_is_global()});
  }
}

// Outputs: blobs still unread after the last layer (Caffe's rule); not inputs.
void Net::classify_outputs(const proto::NetParameter& p) {
  struct Available {
    std::string name;
    Blob* blob;
    bool accuracy;
    bool global;
  };
  std::vector<Available> available;
  for (size_t li = 0; li < layers_.size(); ++li) {
    const auto& lp = p.layer(static_cast<int>(li));
    const Layer& layer = *layers_[li];
    for (const auto& b : lp.bottom())
      available.erase(std::remove_if(available.begin(), available.end(), [&](auto& a) { return a.name == b; }),
                      available.end());
    if (layer.is_input()) continue;
    for (int t = 0; t < lp.top_size(); ++t)
      available.push_back({lp.top(t), tops_[li][t], layer.top_is_accuracy(t), layer.loss_is_global()});
  }
  for (auto& [name, blob, accuracy, global] : available) {
    output_names_.push_back(name);
    output_is_accuracy_.push_back(accuracy);
    output_is_global_.push_back(global);
    float w = 0;
    for (auto& l : losses_)
      if (l.blob == blob) w = l.weight;
    output_weights_.push_back(w);
  }
}

// Only layers that lead to a loss run backward.
void Net::prune_backward() {
  std::set<const Blob*> under_loss;
  for (auto& l : losses_) under_loss.insert(l.blob);
  for (size_t li = layers_.size(); li-- > 0;) {
    bool contributes = false;
    for (auto* t : tops_[li]) contributes = contributes || under_loss.count(t);
    if (!contributes) {
      need_backward_[li] = false;
      std::fill(propagate_down_[li].begin(), propagate_down_[li].end(), false);
      continue;
    }
    for (size_t b = 0; b < bottoms_[li].size(); ++b)
      if (propagate_down_[li][b]) under_loss.insert(bottoms_[li][b]);
  }
}

Blob* Net::blob(const std::string& name) const {
  auto it = blob_by_name_.find(name);
  if (it == blob_by_name_.end()) COCO_THROW(origin_, ": no blob named '", name, "'");
  return it->second;
}

double Net::forward() {
  forward_seconds_.resize(layers_.size(), 0.0);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    layers_[i]->reshape(bottoms_[i], tops_[i]);
    layers_[i]->forward(bottoms_[i], tops_[i]);
    if (debug_) debug_check(i, true);
    if (timing_ && device_ == Device::kCUDA) cuda::synchronize(layers_[i]->name());
    if (timing_) forward_seconds_[i] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  last_local_loss_ = last_global_loss_ = 0;
  for (auto& l : losses_) {
    const auto v = l.blob->data().to_vector();
    double s = 0;
    for (float x : v) s += static_cast<double>(l.weight) * x;
    (l.global ? last_global_loss_ : last_local_loss_) += s;
  }
  return last_local_loss_ + last_global_loss_;
}

void Net::backward() {
  for (auto& l : losses_)
    l.blob->diff().fill((l.global ? l.weight : static_cast<float>(l.weight * local_fraction_)) * ctx_.loss_scale);
  backward_seconds_.resize(layers_.size(), 0.0);
  for (size_t i = layers_.size(); i-- > 0;) {
    if (!need_backward_[i]) continue;
    const auto t0 = std::chrono::steady_clock::now();
    layers_[i]->backward(tops_[i], propagate_down_[i], bottoms_[i]);
    if (debug_) debug_check(i, false);
    if (timing_ && device_ == Device::kCUDA) cuda::synchronize(layers_[i]->name());
    if (timing_) backward_seconds_[i] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
}

void Net::to_device(Device dev) {
  if (dev == device_) return;
  for (auto& p : params_) {
    Blob& b = *p.blob;
    if (b.device() == dev) continue;  // shared with a net that moved first
    Tensor keep;
    keep.copy_from(b.data());  // to the host (from wherever the blob is)
    b.set_device(dev);
    b.data().copy_from(keep);
    b.diff().zero();
  }
  for (auto& b : blobs_) b->set_device(dev);
  device_ = dev;
  for (size_t i = 0; i < layers_.size(); ++i) layers_[i]->reshape(bottoms_[i], tops_[i]);
}

namespace {
// Number of NaN/Inf values of a tensor and the first one's index (-1 if none).
int64_t count_nonfinite(const Tensor& t, int64_t* first) {
  *first = -1;
  if (t.device() == Device::kCUDA) return cuda_count_nonfinite(t.count(), t.data(), first, cuda::stream());
  int64_t n = 0;
  const float* p = t.data();
  for (int64_t i = 0; i < t.count(); ++i)
    if (!std::isfinite(p[i])) {
      if (n++ == 0) *first = i;
    }
  return n;
}
}  // namespace

void Net::debug_check(size_t i, bool forward) {
  const Layer& l = *layers_[i];
  const char* pass = forward ? "forward" : "backward";
  if (device_ == Device::kCUDA)
    cuda::synchronize(detail::concat("debug: iteration ", ctx_.iter, ", ", pass, " of layer '", l.name(), "' (",
                                     l.type(), ")"));
  auto check = [&](const Tensor& t, const std::string& what) {
    int64_t first = -1;
    const int64_t bad = count_nonfinite(t, &first);
    if (bad == 0) return;
    float v = 0;
    device_copy(&v, Device::kCPU, t.data() + first, t.device(), sizeof(float));
    std::string found = detail::concat("debug: iteration ", ctx_.iter, ", ", pass, " of layer '", l.name(), "' (",
                                       l.type(), ") in ", origin_, ": ", what, " holds ", bad, " NaN/Inf value(s) of ",
                                       t.count(), ", the first at index ", first, " (", v, ")");
    if (scan_action_ == ScanAction::kThrow) COCO_THROW(found);
    if (first_nonfinite_.step < 0) {
      const auto L = static_cast<int64_t>(layers_.size());
      first_nonfinite_ = {forward ? static_cast<int64_t>(i) : 2 * L - 1 - static_cast<int64_t>(i), std::move(found)};
    }
  };
  if (forward) {
    for (size_t t = 0; t < tops_[i].size(); ++t)
      if (tops_[i][t]->element_type() == ElementType::kFloat32)  // int32 class ids have no NaN
        check(tops_[i][t]->data(), "top '" + l.param().top(static_cast<int>(t)) + "'");
    return;
  }
  for (size_t b = 0; b < bottoms_[i].size(); ++b)
    if (propagate_down_[i][b])
      check(bottoms_[i][b]->diff(), "the gradient of bottom '" + l.param().bottom(static_cast<int>(b)) + "'");
  for (size_t k = 0; k < l.blobs().size(); ++k) {
    const Layer::RowGradient rows = l.row_gradient(static_cast<int>(k));
    if (rows.grad) check(*rows.grad, "the gradient of parameter " + std::to_string(k) + "'s sampled rows");
    if (l.blobs()[k]->has_diff()) check(l.blobs()[k]->diff(), "the gradient of parameter " + std::to_string(k));
  }
}

void Net::clear_param_diffs() {
  for (auto& p : params_)
    if (p.blob->has_diff()) p.blob->diff().zero();
}

int64_t Net::num_learnable_values() const {
  int64_t n = 0;
  for (auto& p : params_)
    if (p.learnable) n += p.blob->count();
  return n;
}

void Net::share_params_from(const Net& other) {
  std::map<std::pair<std::string, int>, std::shared_ptr<Blob>> theirs;
  for (auto& p : other.params_) theirs[{p.layer, p.index}] = p.blob;
  for (size_t li = 0; li < layers_.size(); ++li) {
    auto& blobs = layers_[li]->blobs();
    for (size_t i = 0; i < blobs.size(); ++i) {
      auto it = theirs.find({layers_[li]->name(), static_cast<int>(i)});
      if (it == theirs.end()) continue;
      if (it->second->shape() != blobs[i]->shape())
        COCO_THROW(origin_, ": layer '", layers_[li]->name(), "' parameter ", i, " has shape ",
                   shape_str(blobs[i]->shape()), " here but ", shape_str(it->second->shape()), " in ", other.origin_);
      blobs[i] = it->second;
    }
  }
  for (auto& p : params_) {
    auto it = theirs.find({p.layer, p.index});
    if (it != theirs.end()) p.blob = it->second;
  }
}

void Net::to_proto(proto::NetParameter* out) const {
  out->Clear();
  out->set_name(name_);
  for (const auto& layer : layers_) {
    if (layer->blobs().empty()) continue;
    bool sharded = false;
    for (size_t i = 0; i < layer->blobs().size(); ++i) sharded = sharded || layer->param_sharded(static_cast<int>(i));
    if (sharded && ctx_.comm->size() > 1)
      COCO_THROW(origin_, ": layer '", layer->name(), "' is sharded over ", ctx_.comm->size(),
                 " ranks; save it with its shards (save_training_checkpoint)");
    auto* lp = out->add_layer();
    lp->set_name(layer->name());
    lp->set_type(layer->type());
    for (const auto& b : layer->blobs()) {
      auto* bp = lp->add_blobs();
      for (auto d : b->shape()) bp->mutable_shape()->add_dim(d);
      const auto v = b->data().to_vector();
      bp->mutable_data()->Add(v.begin(), v.end());
    }
  }
}

void Net::replicated_to_proto(proto::NetParameter* out) const {
  out->Clear();
  out->set_name(name_);
  for (const auto& layer : layers_) {
    bool any = false;
    for (size_t i = 0; i < layer->blobs().size(); ++i) any = any || !layer->param_sharded(static_cast<int>(i));
    if (!any) continue;
    auto* lp = out->add_layer();
    lp->set_name(layer->name());
    lp->set_type(layer->type());
    for (size_t i = 0; i < layer->blobs().size(); ++i) {
      COCO_CHECK(!layer->param_sharded(static_cast<int>(i)), "layer '", layer->name(),
                 "' mixes sharded and replicated parameters");
      const auto& b = layer->blobs()[i];
      auto* bp = lp->add_blobs();
      for (auto d : b->shape()) bp->mutable_shape()->add_dim(d);
      const auto v = b->data().to_vector();
      bp->mutable_data()->Add(v.begin(), v.end());
    }
  }
}

void Net::copy_from(const proto::NetParameter& in, const std::string& origin, bool require_all) {
  COCO_CHECK(device_ == Device::kCPU, "load parameters into ", origin_, " before moving it to a device");
  std::map<std::string, const proto::LayerParameter*> by_name;
  for (const auto& l : in.layer())
    if (l.blobs_size() > 0) by_name[l.name()] = &l;
  for (const auto& layer : layers_) {
    auto& blobs = layer->blobs();
    if (blobs.empty()) continue;
    bool all_sharded = true;
    for (size_t i = 0; i < blobs.size(); ++i) all_sharded = all_sharded && layer->param_sharded(static_cast<int>(i));
    auto it = by_name.find(layer->name());
    if (it == by_name.end()) {
      // Sharded parameters of a coco checkpoint live in its shard files.
      if (require_all && !all_sharded) COCO_THROW(origin, ": has no parameters for layer '", layer->name(), "'");
      continue;
    }
    const auto& src = *it->second;
    if (src.blobs_size() != static_cast<int>(blobs.size()))
      COCO_THROW(origin, ": layer '", layer->name(), "' has ", src.blobs_size(), " parameter blobs, the net expects ",
                 blobs.size());
    for (size_t i = 0; i < blobs.size(); ++i) {
      const auto& bp = src.blobs(static_cast<int>(i));
      const Shape shape = blob_shape_from_proto(bp);
      for (auto d : shape)
        if (d < 0)
          COCO_THROW(origin, ": layer '", layer->name(), "' parameter ", i, " has a negative dimension: ", shape_str(shape));
      // A full (unsharded) blob for a sharded parameter: this rank takes its rows.
      int64_t first = 0, count = blobs[i]->count();
      Shape want = blobs[i]->shape();
      if (layer->param_sharded(static_cast<int>(i))) {
        const int64_t cols = blobs[i]->count(1);
        first = layer->shard_row_start(static_cast<int>(i)) * cols;
        want[0] = layer->shard_total_rows(static_cast<int>(i));
      }
      int64_t have = -1;  // -1: more elements than 64 bits count (a corrupt file)
      try {
        have = shape_count(shape);
      } catch (const Error&) {
      }
      if (have != shape_count(want) || (bp.has_shape() && shape != want))
        COCO_THROW(origin, ": layer '", layer->name(), "' parameter ", i, " has shape ", shape_str(shape),
                   ", the net expects ", shape_str(want));
      if (bp.data_size() == shape_count(want)) {
        std::copy(bp.data().begin() + first, bp.data().begin() + first + count, blobs[i]->mutable_data());
      } else if (bp.double_data_size() == shape_count(want)) {
        std::transform(bp.double_data().begin() + first, bp.double_data().begin() + first + count,
                       blobs[i]->mutable_data(), [](double v) { return static_cast<float>(v); });
      } else {
        COCO_THROW(origin, ": layer '", layer->name(), "' parameter ", i, " holds ", bp.data_size(),
                   " values for shape ", shape_str(want));
      }
    }
  }
}

std::string Net::describe(const DescribeAs& as) const {
  std::vector<std::string> shapes(layers_.size());
  size_t name_w = 5, type_w = 4, shape_w = 9;
  for (size_t i = 0; i < layers_.size(); ++i) {
    for (auto* t : tops_[i]) {
      Shape s = t->shape();
      if (as.built_batch > 0 && !s.empty() && s[0] == as.built_batch) s[0] = as.shown_batch;
      shapes[i] += (shapes[i].empty() ? "" : " ") + shape_str(s);
    }
    name_w = std::max(name_w, layers_[i]->name().size());
    type_w = std::max(type_w, std::string(layers_[i]->type()).size());
    shape_w = std::max(shape_w, shapes[i].size());
  }
  std::ostringstream os;
  os << std::left << std::setw(name_w + 2) << "layer" << std::setw(type_w + 2) << "type" << std::setw(shape_w + 2)
     << "top shape" << "params\n";
  int64_t total = 0, learnable = num_learnable_values();
  for (size_t i = 0; i < layers_.size(); ++i) {
    int64_t n = 0;
    for (auto& b : layers_[i]->blobs()) n += b->count();
    const auto shown = as.param_counts.find(layers_[i]->name());
    if (shown != as.param_counts.end()) {
      learnable += shown->second - n;
      n = shown->second;
    }
    total += n;
    os << std::setw(name_w + 2) << layers_[i]->name() << std::setw(type_w + 2) << layers_[i]->type()
       << std::setw(shape_w + 2) << shapes[i] << n << "\n";
  }
  os << layers_.size() << " layers, " << total << " parameters (" << learnable << " learnable)\n";
  return os.str();
}

}  // namespace coco
