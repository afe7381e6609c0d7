// Net: a graph of layers built from a NetParameter (Caffe's model).
//
// Blobs are found by name; a layer whose top repeats its bottom works in place.
// Where one blob feeds several layers, a Split is inserted (as Caffe does) so each
// backward writes its bottom diff with "=". Legacy `input`/`input_dim` and
// `input_shape` become an Input layer. Layers are filtered by include/exclude
// rules for the phase. Every error names the net's origin and the layer.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/layer.h"

namespace coco {

struct ParamInfo {
  std::shared_ptr<Blob> blob;
  std::string layer;  // owning layer's name
  int index = 0;      // index among the layer's blobs
  float lr_mult = 1;
  float decay_mult = 1;
  bool learnable = true;  // false: state (running statistics), or lr_mult == 0
  bool sharded = false;   // model parallel: this rank holds rows [row_start, row_start + rows)
  int64_t row_start = 0;  //   of a blob of total_rows rows
  int64_t total_rows = 0;
  const Layer* owner = nullptr;  // the layer that holds it (Layer::row_gradient)
};

class Net {
 public:
  Net(const proto::NetParameter& param, Phase phase, Communicator* comm, uint64_t seed,
      const std::string& origin = "net");

  // Runs every layer forward; returns the weighted sum of the loss tops.
  double forward();
  // Seeds loss tops' diffs with their weights and runs the needed backward passes.
  void backward();
  double forward_backward() {
    const double l = forward();
    backward();
    return l;
  }
  void clear_param_diffs();
  // Data parallelism: this rank's share of the global batch (local / global). Losses
  // that are means over the local batch are weighted by it in backward, so the SUM
  // of all ranks' gradients is the gradient of the global mean. Global losses
  // (CocoLoss) are not weighted. 1 in one process.
  void set_local_fraction(double f) { local_fraction_ = f; }
  // The last forward's weighted losses: means over the local batch, and global ones.
  double last_local_loss() const { return last_local_loss_; }
  double last_global_loss() const { return last_global_loss_; }
  void set_iter(int64_t iter) { ctx_.iter = iter; }
  // Convolutions and GEMMs in this precision from the next pass (LayerContext).
  void set_precision(Precision p) { ctx_.precision = p; }
  Precision precision() const { return ctx_.precision; }
  // The next backward's gradients come `s` times larger (LayerContext::loss_scale).
  void set_loss_scale(float s) { ctx_.loss_scale = s; }
  // Which of the iteration's iter_size batches runs next (gradient accumulation):
  // per-batch randomness (Dropout's masks) draws anew for each.
  void set_batch_in_iter(int b) { ctx_.batch_in_iter = b; }
  // The next passes' batch over all ranks (LayerContext::global_batch).
  void set_global_batch(int64_t n) { ctx_.global_batch = n; }
  Phase phase() const { return ctx_.phase; }
  const std::string& name() const { return name_; }
  const std::string& origin() const { return origin_; }

  bool has_blob(const std::string& name) const { return blob_by_name_.count(name) != 0; }
  Blob* blob(const std::string& name) const;
  // The blobs filled from outside (Input layer tops), in declaration order.
  const std::vector<Blob*>& input_blobs() const { return inputs_; }
  const std::vector<std::string>& input_names() const { return input_names_; }
  // Blobs no layer consumes (losses, accuracies), with their loss weights.
  const std::vector<std::string>& output_names() const { return output_names_; }
  const std::vector<float>& output_weights() const { return output_weights_; }
  // True for outputs that are accuracies (an Accuracy layer's top, CocoLoss's second top).
  const std::vector<bool>& output_is_accuracy() const { return output_is_accuracy_; }
  // True for outputs that are already global means (same value on every rank).
  const std::vector<bool>& output_is_global() const { return output_is_global_; }

  size_t num_layers() const { return layers_.size(); }
  Layer& layer(size_t i) { return *layers_[i]; }
  const Layer& layer(size_t i) const { return *layers_[i]; }
  const std::vector<Blob*>& tops(size_t i) const { return tops_[i]; }
  const std::vector<Blob*>& bottoms(size_t i) const { return bottoms_[i]; }
  bool layer_needs_backward(size_t i) const { return need_backward_[i]; }

  // Moves the net to a device: parameters keep their values, activations and
  // gradients are reallocated there, and every layer is reshaped so its scratch
  // follows. Parameters shared with another net (share_params_from) move once.
  void to_device(Device dev);
  Device device() const { return device_; }

  // Debug mode (coco-train --debug): after every layer's forward and backward, a
  // synchronous CUDA error check and a scan of what the layer wrote (tops; bottom and
  // parameter gradients) for NaN/Inf. The first bad value throws a coco::Error
  // naming the iteration, the pass, the layer and the blob -- or, with kRecord, is
  // kept (take_first_nonfinite) while the pass runs on to its end: on several ranks
  // a rank that left a pass early would leave its peers alone in the head's
  // collectives (the trainer's diagnostic re-run records).
  enum class ScanAction { kThrow, kRecord };
  void set_debug(bool on, ScanAction action = ScanAction::kThrow) {
    debug_ = on;
    scan_action_ = action;
  }
  bool debug() const { return debug_; }
  ScanAction scan_action() const { return scan_action_; }
  // The first NaN/Inf recorded since the last call, and where in the pass it was
  // found (the forward of layer i is step i, the backward of layer i step 2L - 1 - i;
  // -1: nothing found); forgets it.
  struct ScanFinding {
    int64_t step = -1;
    std::string what;
  };
  ScanFinding take_first_nonfinite() { return std::exchange(first_nonfinite_, ScanFinding()); }

  // Per-layer wall time of forward and backward, accumulated while enabled (coco-train --time).
  void enable_timing(bool on) { timing_ = on; }
  const std::vector<double>& forward_seconds() const { return forward_seconds_; }
  const std::vector<double>& backward_seconds() const { return backward_seconds_; }

  // Every parameter blob (learnable or state), in layer order.
  const std::vector<ParamInfo>& params() const { return params_; }
  int64_t num_learnable_values() const;

  // Use other's parameter blobs (by layer name) instead of this net's own; shapes must match.
  void share_params_from(const Net& other);
  // Writes each layer with parameters as (name, type, blobs). In one process a
  // sharded parameter is whole and is written like any other.
  void to_proto(proto::NetParameter* out) const;
  // Layers' parameters only where they are replicated (not sharded), for checkpoints
  // whose sharded rows go to per-rank files.
  void replicated_to_proto(proto::NetParameter* out) const;
  // Copies parameters by layer name. Layers of `in` absent here are skipped; a shape
  // mismatch or (with require_all) a layer here missing from `in` is an error.
  void copy_from(const proto::NetParameter& in, const std::string& origin, bool require_all);
  // One line per layer: name, type, top shapes, parameter count; then totals.
  std::string describe() const { return describe(DescribeAs{}); }
  // The same table for a net built smaller than the one it stands for (the memory
  // plan's): a top whose first axis is built_batch is shown at shown_batch, and a
  // layer named in param_counts is shown with that many (learnable) parameters.
  struct DescribeAs {
    int64_t built_batch = 0, shown_batch = 0;
    std::map<std::string, int64_t> param_counts;
  };
  std::string describe(const DescribeAs& as) const;

 private:
  // Construction in steps (Caffe's AppendTop / AppendBottom / AppendParam).
  // Per blob: whether a layer that learns lies upstream of it (so it wants a gradient).
  using GradientWanted = std::map<const Blob*, bool>;
  void append_layer(const proto::LayerParameter& lp, bool force_backward, GradientWanted* wanted);
  Blob* append_bottom(const std::string& name);
  Blob* append_top(const proto::LayerParameter& lp, const Layer& layer, const std::string& name);
  // Records the layer's parameter blobs; true if any of them learns.
  bool append_params(const proto::LayerParameter& lp, const Layer& layer);
  void decide_backward(size_t li, const proto::LayerParameter& lp, bool learns, bool force_backward,
                       GradientWanted* wanted);
  void append_losses(const proto::LayerParameter& lp, const Layer& layer, const std::vector<Blob*>& top);
  void classify_outputs(const proto::NetParameter& p);
  void prune_backward();

  std::string name_, origin_;
  LayerContext ctx_;
  Rng rng_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<std::vector<Blob*>> bottoms_, tops_;
  std::vector<std::vector<bool>> propagate_down_;
  std::vector<bool> need_backward_;
  std::vector<std::shared_ptr<Blob>> blobs_;
  std::map<std::string, Blob*> blob_by_name_;
  std::vector<Blob*> inputs_;
  std::vector<std::string> input_names_;
  std::vector<std::string> output_names_;
  std::vector<float> output_weights_;
  std::vector<bool> output_is_accuracy_;
  std::vector<bool> output_is_global_;
  struct Loss {
    Blob* blob;
    float weight;
    bool global;
  };
  std::vector<Loss> losses_;
  double local_fraction_ = 1.0;
  double last_local_loss_ = 0, last_global_loss_ = 0;
  std::vector<ParamInfo> params_;
  bool timing_ = false;
  bool debug_ = false;
  ScanAction scan_action_ = ScanAction::kThrow;
  ScanFinding first_nonfinite_;
  Device device_ = Device::kCPU;
  void debug_check(size_t layer, bool forward);
  std::vector<double> forward_seconds_, backward_seconds_;
};

// Caffe's rule for include/exclude.
bool layer_included(const proto::LayerParameter& layer, const proto::NetState& state);
// The net with only the layers its include/exclude rules admit in `phase` (level and
// stages from the net's own state); everything else (inputs, name) as given.
proto::NetParameter layers_for_phase(const proto::NetParameter& in, Phase phase);
// The net after phase filtering, legacy-input upgrade and Split insertion.
proto::NetParameter prepare_net(const proto::NetParameter& in, Phase phase, const std::string& origin);
Shape blob_shape_from_proto(const proto::BlobProto& b);

}  // namespace coco
