#include "engine/layer.h"

#include "engine/common.h"
#include "engine/filler.h"

namespace coco {

std::string Layer::where() const { return "layer '" + name() + "' (" + type() + "): "; }

void Layer::setup(const Blobs& bottom, const Blobs& top, LayerContext* ctx, Rng& rng) {
  ctx_ = ctx;
  const int nb = static_cast<int>(bottom.size()), nt = static_cast<int>(top.size());
  if (nb < min_bottoms() || (max_bottoms() >= 0 && nb > max_bottoms()))
    COCO_THROW(where(), "takes ", min_bottoms(), (max_bottoms() == min_bottoms() ? "" : " or more"),
               max_bottoms() > min_bottoms() ? " (at most " + std::to_string(max_bottoms()) + ")" : "",
               " bottom blob(s), got ", nb);
  if (nt < min_tops() || (max_tops() >= 0 && nt > max_tops()))
    COCO_THROW(where(), "takes ", min_tops(), (max_tops() == min_tops() ? "" : " or more"),
               max_tops() > min_tops() ? " (at most " + std::to_string(max_tops()) + ")" : "",
               " top blob(s), got ", nt);
  layer_setup(bottom, top, rng);
  reshape(bottom, top);
}

void Layer::init_params(const std::vector<ParamDecl>& decls, Rng& rng) {
  if (!blobs_.empty()) {
    if (blobs_.size() != decls.size())
      COCO_THROW(where(), "expected ", decls.size(), " parameter blob(s), got ", blobs_.size());
    for (size_t i = 0; i < decls.size(); ++i)
      if (blobs_[i]->shape() != decls[i].shape)
        COCO_THROW(where(), decls[i].what, " shape ", shape_str(blobs_[i]->shape()), " does not match the expected ",
                   shape_str(decls[i].shape));
    return;
  }
  for (const auto& d : decls) {
    blobs_.push_back(std::make_shared<Blob>(d.shape));
    fill(*d.filler, blobs_.back()->data(), rng);
  }
}

static bool on_cuda(const Blobs& a, const Blobs& b) {
  if (!a.empty()) return a[0]->device() == Device::kCUDA;
  if (!b.empty()) return b[0]->device() == Device::kCUDA;
  return false;
}

void Layer::forward(const Blobs& bottom, const Blobs& top) {
  for (size_t b = 0; b < bottom.size(); ++b)
    if (bottom[b]->element_type() == ElementType::kInt32 && !reads_class_ids(static_cast<int>(b)))
      COCO_THROW(where(), "bottom ", b, (static_cast<int>(b) < param_.bottom_size() ? " '" + param_.bottom(static_cast<int>(b)) + "'" : std::string()),
                 " holds int32 class ids (the label input), which this layer does not read; give the labels to a "
                 "loss or Accuracy layer directly");
  if (on_cuda(bottom, top))
    forward_cuda(bottom, top);
  else
    forward_cpu(bottom, top);
}

void Layer::backward(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom) {
  if (on_cuda(bottom, top))
    backward_cuda(top, propagate_down, bottom);
  else
    backward_cpu(top, propagate_down, bottom);
}

void Layer::no_cuda_backend() const {
  COCO_THROW(where(), "this coco build has no CUDA backend (configure with -DCOCO_WITH_CUDA=ON); run it on the CPU "
             "(--device cpu)");
}

void Layer::forward_cuda(const Blobs&, const Blobs&) {
#if COCO_WITH_CUDA
  COCO_THROW(where(), "has no CUDA implementation yet; run it on the CPU (--device cpu)");
#else
  no_cuda_backend();
#endif
}

void Layer::backward_cuda(const Blobs&, const std::vector<bool>&, const Blobs&) {
#if COCO_WITH_CUDA
  COCO_THROW(where(), "has no CUDA implementation yet; run it on the CPU (--device cpu)");
#else
  no_cuda_backend();
#endif
}

void LayerRegistry::add(const std::string& type, LayerFactory factory) {
  if (!factories_.emplace(type, std::move(factory)).second)
    COCO_THROW("layer type '", type, "' registered twice");
}

std::unique_ptr<Layer> LayerRegistry::create(const proto::LayerParameter& param) const {
  auto it = factories_.find(param.type());
  if (it == factories_.end()) {
    std::string known;
    for (auto& kv : factories_) known += (known.empty() ? "" : ", ") + kv.first;
    COCO_THROW("layer '", param.name(), "': unknown layer type '", param.type(), "' (known: ", known, ")");
  }
  return it->second(param);
}

std::vector<std::string> LayerRegistry::types() const {
  std::vector<std::string> out;
  for (auto& kv : factories_) out.push_back(kv.first);
  return out;
}

const LayerRegistry& layer_registry() {
  static const LayerRegistry registry = [] {
    LayerRegistry r;
    register_builtin_layers(r);
    return r;
  }();
  return registry;
}

}  // namespace coco
