// Layer: the unit a Net is built from, and the explicit registry of layer types.
//
// A layer reads `bottom` blobs and writes `top` blobs. forward() computes tops
// from bottoms; backward() writes (=, never +=) the gradient of the loss into the
// diff of every bottom whose propagate_down is set, and accumulates (+=) into the
// diffs of its parameter blobs (the Net zeroes them before each step). The Net
// inserts Split layers where one blob feeds several layers, so "=" is always right.
//
// Device dispatch: forward()/backward() pick the CPU or CUDA path from the device
// of the first blob. The CPU path is the oracle; a layer without a CUDA path throws
// a clear error on CUDA tensors -- nothing is copied to the host behind the user.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "engine/precision.h"
#include "engine/proto_fwd.h"
#include "engine/rng.h"
#include "engine/tensor.h"

namespace coco {

enum class Phase { kTrain, kTest };

// What a layer may know about the run it is part of. Owned by the Net.
struct LayerContext {
  Phase phase = Phase::kTrain;
  int64_t iter = 0;        // current training iteration (counter-based randomness)
  int batch_in_iter = 0;   // which of the iteration's iter_size batches (gradient accumulation)
  uint64_t seed = 1;       // the run's seed
  Communicator* comm = nullptr;  // never null inside a Net (LocalCommunicator at size 1)
  // The pass's batch over all ranks, each holding shard_range(global_batch, r, N) of
  // it (the trainer's split); 0: not known (a net driven by hand).
  int64_t global_batch = 0;
  // The precision of convolutions and GEMMs (engine/precision.h); each layer that
  // runs one reads it. Everything else stays fp32.
  Precision precision = Precision::kFP32;
  // Dynamic loss scaling (FP16): backward starts from loss_weight * loss_scale, so
  // every gradient is that many times larger until the solver divides it out.
  float loss_scale = 1.f;
};

using Blobs = std::vector<Blob*>;

class Layer {
 public:
  explicit Layer(const proto::LayerParameter& param) : param_(param) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  virtual const char* type() const = 0;

  // Bottom/top count limits, checked by setup() (-1: unbounded).
  virtual int min_bottoms() const { return 1; }
  virtual int max_bottoms() const { return 1; }
  virtual int min_tops() const { return 1; }
  virtual int max_tops() const { return 1; }
  // False for inputs a gradient never flows to (labels).
  virtual bool can_backward_to(int bottom_index) const { return true; }
  // Loss layers get loss_weight 1 on top 0 unless the config says otherwise.
  virtual bool is_loss() const { return false; }
  // Whether bottom i may hold int32 class ids (an int32 blob: the label input);
  // forward refuses them elsewhere, where the bits would be read as floats.
  virtual bool reads_class_ids(int bottom_index) const { return false; }
  // Layers whose top may be its bottom (in-place) say so.
  virtual bool allows_in_place() const { return false; }
  // False for parameter blobs that are state, not weights (BatchNorm's running
  // statistics): the solver never updates them, checkpoints still hold them.
  virtual bool param_learnable(int param_index) const { return true; }
  // True for parameter blobs split over the ranks (model parallel: CocoLoss's
  // centroid shard). Their gradients are complete on each rank and are never
  // all-reduced; checkpoints store them per rank with their row range.
  virtual bool param_sharded(int param_index) const { return false; }
  // Where a sharded parameter's rows start in the full (unsharded) blob, and the
  // full row count.
  virtual int64_t shard_row_start(int param_index) const { return 0; }
  virtual int64_t shard_total_rows(int param_index) const { return 0; }
  // A parameter whose gradient a train pass gives for some of its rows only (the
  // sampled classes of a CocoLoss head): those rows (floats holding row indices,
  // ascending) and their gradient (rows x row size), on the blob's device. Such a
  // blob keeps no diff (Blob::drop_diff); the solver updates those rows alone. Both
  // null: the blob's diff holds the whole gradient.
  struct RowGradient {
    const Tensor* rows = nullptr;
    const Tensor* grad = nullptr;
  };
  virtual RowGradient row_gradient(int param_index) const { return {}; }
  // True for losses that are already the mean over the GLOBAL batch (the layer
  // gathers all ranks' samples); false for the usual mean over the local batch.
  virtual bool loss_is_global() const { return false; }
  // True for the layer that holds the net's entry points: its tops are filled from
  // outside (data, labels) and are inputs, never outputs.
  virtual bool is_input() const { return false; }
  // True for tops that are accuracies (reported as such in test passes), not losses.
  virtual bool top_is_accuracy(int top_index) const { return false; }

  // Once, when the net is built: check counts, create and fill parameters, reshape.
  void setup(const Blobs& bottom, const Blobs& top, LayerContext* ctx, Rng& rng);
  // Tops' shapes from bottoms' shapes; called before every forward.
  virtual void reshape(const Blobs& bottom, const Blobs& top) = 0;

  void forward(const Blobs& bottom, const Blobs& top);
  void backward(const Blobs& top, const std::vector<bool>& propagate_down, const Blobs& bottom);

  const proto::LayerParameter& param() const { return param_; }
  const std::string& name() const { return param_.name(); }
  std::vector<std::shared_ptr<Blob>>& blobs() { return blobs_; }
  const std::vector<std::shared_ptr<Blob>>& blobs() const { return blobs_; }
  const LayerContext& ctx() const { return *ctx_; }
  Phase phase() const { return ctx_->phase; }

 protected:
  // Create parameters (blobs_) and read the layer's parameters. Bottom shapes are set.
  virtual void layer_setup(const Blobs& bottom, const Blobs& top, Rng& rng) {}
  virtual void forward_cpu(const Blobs& bottom, const Blobs& top) = 0;
  virtual void backward_cpu(const Blobs& top, const std::vector<bool>& propagate_down,
                            const Blobs& bottom) = 0;
  // The CUDA path. A layer that has one declares both overrides in every build; in a
  // build without the CUDA backend its .cpp defines them with COCO_CUDA_STUBS. The
  // defaults throw: in a CUDA build that the layer has no CUDA implementation, in a
  // CPU-only build no_cuda_backend().
  virtual void forward_cuda(const Blobs& bottom, const Blobs& top);
  virtual void backward_cuda(const Blobs& top, const std::vector<bool>& propagate_down,
                             const Blobs& bottom);
  // Throws coco::Error: this build has no CUDA backend (COCO_WITH_CUDA=0).
  [[noreturn]] void no_cuda_backend() const;

  // One parameter blob a layer declares: its name for messages, shape and filler.
  struct ParamDecl {
    const char* what;
    Shape shape;
    const proto::FillerParameter* filler;
  };
  // Creates blobs_ from `decls` and fills them -- or, when blobs_ already holds
  // loaded weights, checks their number and shapes with a clear error.
  void init_params(const std::vector<ParamDecl>& decls, Rng& rng);

  // "layer 'conv1' (Convolution): " -- prefix for error messages.
  std::string where() const;

  proto::LayerParameter param_;
  std::vector<std::shared_ptr<Blob>> blobs_;
  LayerContext* ctx_ = nullptr;
};

using LayerFactory = std::function<std::unique_ptr<Layer>(const proto::LayerParameter&)>;

class LayerRegistry {
 public:
  // Throws if `type` is already registered.
  void add(const std::string& type, LayerFactory factory);
  // Throws a clear error naming the layer and the known types if `type` is unknown.
  std::unique_ptr<Layer> create(const proto::LayerParameter& param) const;
  bool has(const std::string& type) const { return factories_.count(type) != 0; }
  std::vector<std::string> types() const;

 private:
  std::map<std::string, LayerFactory> factories_;
};

// Every built-in layer, in one explicit list (layers/register_layers.cpp).
void register_builtin_layers(LayerRegistry& registry);
// The process-wide registry holding the built-in layers (built on first use).
const LayerRegistry& layer_registry();

template <typename T>
LayerFactory factory_of() {
  return [](const proto::LayerParameter& p) { return std::unique_ptr<Layer>(new T(p)); };
}

}  // namespace coco

// The CUDA overrides of layer Cls for a build without the CUDA backend, so that a
// layer's header declares them in every build (no #if there): one line in the
// layer's .cpp, under #if !COCO_WITH_CUDA, inside namespace coco. Both throw
// Layer::no_cuda_backend()'s error.
#define COCO_CUDA_STUBS(Cls)                                                                              \
  void Cls::forward_cuda(const ::coco::Blobs&, const ::coco::Blobs&) { no_cuda_backend(); }               \
  void Cls::backward_cuda(const ::coco::Blobs&, const std::vector<bool>&, const ::coco::Blobs&) {         \
    no_cuda_backend();                                                                                    \
  }
