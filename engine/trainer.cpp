#include "engine/trainer.h"

#include "comm/comm_timeout.h"

#include <chrono>
#include <cmath>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/checkpoint.h"
#include "engine/debug.h"
#include "engine/global_batch.h"
#include "engine/training_checkpoint.h"
#include "engine/common.h"
#include "engine/cuda_runtime.h"
#include "engine/logging.h"
#include "engine/memory_plan.h"
#include "engine/math.h"
#include "engine/rank_agreement.h"
#include "engine/loss_window.h"
#include "engine/metrics_writer.h"
#include "engine/throughput.h"
#include "engine/validation.h"
#include "engine/settings.h"

namespace coco {

namespace {

Precision solver_precision(const proto::SolverParameter& s) {
  Precision p = Precision::kFP32;
  COCO_CHECK(precision_from_name(proto::SolverParameter::Precision_Name(s.precision()), &p),
             "no coco precision for the solver's ", proto::SolverParameter::Precision_Name(s.precision()));
  return p;
}

// The label input (the net's second) holds int32 class ids, as the data sources
// write them: exact past float32's 2^24 (layers/labels.h).
void take_class_ids(Net& net) {
  if (net.input_blobs().size() > 1) net.input_blobs()[1]->set_element_type(ElementType::kInt32);
}
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// "dir/name" -> ("dir", "name"); "name" -> ("", "name").
std::pair<std::string, std::string> split_path(const std::string& p) {
  const auto slash = p.rfind('/');
  if (slash == std::string::npos) return {"", p};
  return {slash == 0 ? "/" : p.substr(0, slash), p.substr(slash + 1)};
}

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = static_cast<int64_t>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(t / 3600),
                static_cast<long long>(t / 60 % 60), static_cast<long long>(t % 60));
  return buf;
}
// The state blobs (running statistics: parameters the solver does not step) of a
// net, copied out and put back around a step that must leave no trace.
void save_state(const Net& net, std::vector<Tensor>* out) {
  const auto& params = net.params();
  out->resize(params.size());
  for (size_t i = 0; i < params.size(); ++i)
    if (!params[i].learnable) (*out)[i].copy_from(params[i].blob->data());
}

void restore_state(const Net& net, const std::vector<Tensor>& saved) {
  const auto& params = net.params();
  for (size_t i = 0; i < params.size(); ++i)
    if (!params[i].learnable) params[i].blob->data().copy_from(saved[i]);
}

// The identity of a run's checkpoint files: a 64-bit FNV-1a hash of everything that
// decides what they hold (the effective solver with its net, the data root, the batch,
// the rank count, the initial weights), as 16 hex digits. Runs with different settings
// that share a snapshot prefix write different ids, so a mix of their files is refused;
// a resumed run writes the uninterrupted run's id, so their files stay byte-equal.
std::string run_fingerprint(const proto::SolverParameter& solver, const TrainOptions& opt, int64_t batch, int ranks) {
  const std::string text = to_text(solver) + "\n" + opt.data_root + "\n" + std::to_string(batch) + "\n" +
                           std::to_string(ranks) + "\n" + opt.weights;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a(text.data(), text.size())));
  return buf;
}

// The first parameter of `net` holding a NaN or Inf, as "layer 'x' parameter i"; "" if none.
std::string first_nonfinite_param(const Net& net) {
  for (const auto& p : net.params()) {
    const std::vector<float> v = p.blob->data().to_vector();
    if (!std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); }))
      return "layer '" + p.layer + "' parameter " + std::to_string(p.index);
  }
  return "";
}

void create_parent_folder(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return;
  const std::string dir = path.substr(0, slash);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) COCO_THROW(dir, ": cannot create the snapshot folder: ", ec.message());
}

// The iteration of a checkpoint file name "<name>_iter_<N>.ckpt", or -1.
int64_t checkpoint_iteration(const std::string& file, const std::string& name) {
  const std::string head = name + "_iter_", tail = ".ckpt";
  if (file.size() <= head.size() + tail.size() || file.compare(0, head.size(), head) != 0 ||
      file.compare(file.size() - tail.size(), tail.size(), tail) != 0)
    return -1;
  const std::string digits = file.substr(head.size(), file.size() - head.size() - tail.size());
  if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}
}  // namespace

struct Trainer::RunState {
  RunState(const std::string& metrics_path, bool lead, int average_loss);
  bool lead;  // rank 0: logs and writes the metrics
  MetricsWriter metrics;
  LossWindow loss_window;
  Throughput throughput;
  TrainResult result;
  std::vector<Tensor> state_backup;  // state blobs before a step that may be skipped
};

Trainer::~Trainer() = default;

Trainer::Trainer(const TrainOptions& opt, Communicator* comm, Communicator* host_comm)
    : opt_(opt), comm_(comm), host_comm_(host_comm ? host_comm : comm) {
  cfg_ = load_train_config(opt.config);
  auto& s = cfg_.solver;
  if (opt.seed >= 0) s.set_random_seed(opt.seed);
  seed_ = s.random_seed() >= 0 ? static_cast<uint64_t>(s.random_seed()) : 1;
  if (cfg_.net_only) {
    if (!opt.dry_run)
      COCO_THROW(opt.config, ": holds a net, not a solver; training needs a solver config (use --dry-run to inspect a net)");
    if (opt.batch_size > 0) set_input_batch(&cfg_.net, opt.batch_size);
    if (opt.batch_size_per_rank > 0) set_input_batch(&cfg_.net, opt.batch_size_per_rank);
    train_net_ = std::make_unique<Net>(cfg_.net, Phase::kTrain, comm_, seed_, cfg_.net_origin);
    return;
  }
  ranks_ = opt.dry_run && opt.plan_ranks > 0 ? opt.plan_ranks : comm_->size();
  read_solver_settings();
  require_ranks_agree(settings_ranks_share(), *host_comm_);
  if (opt.dry_run) {
    plan_dry_run();
    return;
  }
  build_train_net();
  open_data_and_test_net();
  solver_ = std::make_unique<SgdSolver>(s, train_net_.get(), host_comm_);
  reducer_ = std::make_unique<GradientReducer>(*train_net_, *comm_);
  run_id_ = run_fingerprint(s, opt, batch_, comm_->size());
  load_starting_point();
  // Parameters are loaded on the host; then the nets and the momentum move.
  if (opt.device != Device::kCPU) {
    if (train_net_->precision() == Precision::kBF16 && cuda::compute_capability() < 80)
      COCO_THROW(opt_.config, ": precision BF16 needs a GPU of compute capability 8.0 or newer (cuBLAS and cuDNN "
                 "have no bf16 arithmetic before Ampere); this one is ", cuda::compute_capability() / 10, ".",
                 cuda::compute_capability() % 10, ": use FP16 or FP32");
    train_net_->to_device(opt.device);
    if (test_net_) test_net_->to_device(opt.device);
    if (validator_) validator_->to_device(opt.device);
    solver_->to_device(opt.device);
  }
  if (opt.debug) {
    // FP16's overflows are the loss scale's to handle: the scan records them.
    train_net_->set_debug(true, solver_->dynamic_loss_scale() ? Net::ScanAction::kRecord : Net::ScanAction::kThrow);
    if (test_net_) test_net_->set_debug(true);
  }
  // One consistent start on every rank (rank 0's replicated parameters).
  reducer_->broadcast_params(0);
}

// The solver's settings after the command line's overrides, checked.
void Trainer::read_solver_settings() {
  auto& s = cfg_.solver;
  if (!opt_.precision.empty()) {
    proto::SolverParameter::Precision p;
    if (!proto::SolverParameter::Precision_Parse(opt_.precision, &p))
      COCO_THROW("--precision ", opt_.precision, " is not FP32, BF16 or FP16");
    if (p == proto::SolverParameter::FP32)
      s.clear_precision();  // the default: the run's text (its fingerprint) as without the flag
    else
      s.set_precision(p);
  }
  validate_solver(s, opt_.config);
  if (opt_.max_iter >= 0) s.set_max_iter(static_cast<int>(opt_.max_iter));
  max_iter_ = s.max_iter();
  if (!s.has_train_data() && !opt_.dry_run)
    COCO_THROW(opt_.config, ": the solver has no train_data { source: ... } (e.g. \"mnist:data/mnist\")");
  batch_ = opt_.batch_size > 0            ? opt_.batch_size
           : opt_.batch_size_per_rank > 0 ? opt_.batch_size_per_rank * ranks_
                                          : global_batch_size(s.train_data(), ranks_);
  if (batch_ <= 0) COCO_THROW(opt_.config, ": batch size must be positive");
  snapshot_prefix_ = !opt_.snapshot_prefix.empty() ? opt_.snapshot_prefix
                     : s.has_snapshot_prefix()     ? s.snapshot_prefix()
                                                   : "snapshots/" + (cfg_.net.name().empty() ? "net" : cfg_.net.name());
  if (!snapshot_prefix_names_files(snapshot_prefix_))
    COCO_THROW(opt_.config, ": snapshot prefix '", snapshot_prefix_, "' names no file (it would write '",
               snapshot_prefix_, "_iter_N.ckpt'); give a path such as snapshots/mnist");
}

namespace {
// The build's backends and compiler, as far as they decide results.
std::string build_id() {
  return "cuda=" + std::to_string(COCO_WITH_CUDA) + " dnnl=" + std::to_string(COCO_WITH_DNNL) +
         " nccl=" + std::to_string(COCO_WITH_NCCL) + " compiler " + __VERSION__;
}
}  // namespace

// What every rank must be started with, in the words of the flags and fields: the
// specific ones first, so a differing --max-iter is named as such (it also changes
// the solver text). The build too: a mix of builds may disagree on kernels or files.
std::vector<AgreedSetting> Trainer::settings_ranks_share() const {
  const auto flag = [](bool on) { return std::string(on ? "on" : "off"); };
  std::string fillers;
  for (const auto& l : opt_.weights_keep_fillers) fillers += l + ",";
  return {{"the config file (--config)", opt_.config},
          {"max_iter (--max-iter)", std::to_string(max_iter_)},
          {"the global batch size (--batch-size, --batch-size-per-rank)", std::to_string(batch_)},
          {"random_seed (--seed)", std::to_string(seed_)},
          {"the data folder (--data-root)", opt_.data_root},
          {"the checkpoint to resume (--resume)", opt_.resume},
          {"the initial weights (--weights, --weights-keep-fillers)", opt_.weights + " " + fillers},
          {"the snapshot prefix (--snapshot-prefix)", snapshot_prefix_},
          {"the device type (--device)", opt_.device == Device::kCPU ? "cpu" : "cuda"},
          {"--debug", flag(opt_.debug) + flag(opt_.debug_gradcheck)},
          {"--on-nonfinite", opt_.skip_nonfinite ? "skip" : "stop"},
          {"the collective timeout (--comm-timeout, COCO_COMM_TIMEOUT)", std::to_string(comm_timeout_s())},
          {"the solver and net (the config's text after the flags)", to_text(cfg_.solver)},
          {"the coco build", build_id()}};
}

// The training net at this rank's slice of the global batch.
void Trainer::build_train_net() {
  slice_ = shard_range(batch_, comm_->rank(), comm_->size());
  if (slice_.count == 0)
    COCO_THROW(opt_.config, ": the batch of ", batch_, " has fewer samples than the ", comm_->size(), " ranks");
  proto::NetParameter train_param = cfg_.net;
  set_input_batch(&train_param, slice_.count);
  train_net_ = std::make_unique<Net>(train_param, Phase::kTrain, comm_, seed_, cfg_.net_origin);
  take_class_ids(*train_net_);
  train_net_->set_local_fraction(static_cast<double>(slice_.count) / batch_);
  train_net_->set_global_batch(batch_);
  train_net_->set_precision(solver_precision(cfg_.solver));
  refuse_what_class_sampling_cannot_do();
}

// A sampling head (sample_rate < 1) gives its gradient as the step's sampled rows,
// which a second batch of the same update would draw anew, and which a finite-
// difference check over the whole blob cannot read.
void Trainer::refuse_what_class_sampling_cannot_do() const {
  std::string sampled;
  const proto::NetParameter train = layers_for_phase(cfg_.net, Phase::kTrain);
  for (const auto& l : train.layer())
    if (l.type() == "CocoLoss" && l.coco_loss_param().sample_rate() < 1) sampled = l.name();
  if (sampled.empty()) return;
  if (iter_size() > 1)
    COCO_THROW(opt_.config, ": iter_size = ", iter_size(), " with layer '", sampled, "' sampling classes "
               "(sample_rate < 1): each batch would draw its own classes; use iter_size: 1 or sample_rate: 1");
  if (opt_.debug_gradcheck)
    COCO_THROW(opt_.config, ": --debug-gradcheck needs every class's gradient, and layer '", sampled,
               "' samples classes (sample_rate < 1): check the gradients with sample_rate: 1");
}

// The data sources, checked against the net's input, and the test net sharing the
// training net's parameters.
void Trainer::open_data_and_test_net() {
  const auto& s = cfg_.solver;
  if (train_net_->input_blobs().size() != 2)
    COCO_THROW(cfg_.net_origin, ": the net must declare two inputs (data, label), it has ",
               train_net_->input_blobs().size());
  train_data_ = open_data_source(s.train_data(), opt_.data_root, seed_, opt_.config);
  if (s.val_data_size() > 0)
    validator_ = std::make_unique<Validator>(s, cfg_.net, cfg_.net_origin, opt_.data_root, *train_net_, comm_,
                                             host_comm_, seed_);
  const Shape want = train_data_->sample_shape();
  const Shape have(train_net_->input_blobs()[0]->shape().begin() + 1, train_net_->input_blobs()[0]->shape().end());
  if (shape_count(want) != shape_count(have))
    COCO_THROW(cfg_.net_origin, ": input '", train_net_->input_names()[0], "' takes samples of shape ", shape_str(have),
               " but ", s.train_data().source(), " gives ", shape_str(want));
  if (!s.has_test_data() || s.test_interval() <= 0) return;
  test_data_ = open_data_source(s.test_data(), opt_.data_root, seed_, opt_.config);
  test_batch_ = global_batch_size(s.test_data(), comm_->size());
  proto::NetParameter test_param = cfg_.net;
  set_input_batch(&test_param, test_batch_);
  test_net_ = std::make_unique<Net>(test_param, Phase::kTest, comm_, seed_, cfg_.net_origin + " (test)");
  take_class_ids(*test_net_);
  test_net_->share_params_from(*train_net_);
}

// --weights or --resume, after checking the snapshot folder: a folder that cannot be
// written fails now, not at the first snapshot hours in; temporary files of an
// interrupted write are reported (and removed when their writer is gone) -- they
// never count as checkpoints.
void Trainer::load_starting_point() {
  if (!opt_.weights.empty()) {
    const auto layers = load_weights(*train_net_, opt_.weights, opt_.weights_keep_fillers);
    std::string kept;
    for (const auto& l : opt_.weights_keep_fillers) kept += (kept.empty() ? "; from their fillers: " : ", ") + l;
    spdlog::info("initialised {} layer(s) from {}{}", layers.size(), opt_.weights, kept);
  }
  const auto [snap_dir, snap_name] = split_path(snapshot_prefix_);
  if (cfg_.solver.snapshot() > 0 || cfg_.solver.snapshot_after_train()) ensure_writable_folder(snap_dir, "snapshot");
  if (comm_->local_rank() == 0) {
    auto notes = clean_partial_writes(snap_dir, snap_name);
    if (!opt_.resume.empty()) {
      const auto [resume_dir, resume_name] = split_path(opt_.resume);
      if (resume_dir != snap_dir) {
        auto more = clean_partial_writes(resume_dir, "");
        notes.insert(notes.end(), more.begin(), more.end());
      }
    }
    for (const auto& n : notes) spdlog::warn("{}", n);
  }
  if (!opt_.resume.empty()) {
    start_iter_ = load_training_checkpoint(opt_.resume, *train_net_, *solver_);
    spdlog::info("resumed from {} at iteration {}", opt_.resume, start_iter_);
    if (max_iter_ < start_iter_)
      COCO_THROW(opt_.resume, ": is at iteration ", start_iter_, ", past max_iter ", max_iter_,
                 "; to continue training, raise max_iter (--max-iter N with N > ", start_iter_, ")");
  }
  if (comm_->rank() == 0) warn_about_existing_checkpoints();
}

void Trainer::fill_inputs(Net& net, bool train, int64_t first, int64_t count) {
  Blob* data = net.input_blobs()[0];
  Blob* label = net.input_blobs()[1];
  const DataSource& src = train ? *train_data_ : *test_data_;
  const auto fill = [&](Blob& d, Blob& l) {
    if (train)
      src.fill_train(first, count, d.mutable_data(), l.mutable_data_int32());
    else
      src.fill_range(first, count, d.mutable_data(), l.mutable_data_int32());
  };
  if (net.device() == Device::kCPU) {
    fill(*data, *label);
    return;
  }
  host_data_.reshape(data->shape());
  host_label_.set_element_type(ElementType::kInt32);
  host_label_.reshape(label->shape());
  fill(host_data_, host_label_);
  data->data().copy_from(host_data_.data());
  label->data().copy_from(host_label_.data());
}

// The scan records instead of throwing, so every rank runs the whole re-run and
// meets its peers in each of the head's collectives; a rank that stopped at its
// first NaN would pair its next collectives with another rank's re-run.
Trainer::NonfiniteFinding Trainer::diagnose_nonfinite(int64_t iter) {
  const bool was = train_net_->debug();
  const Net::ScanAction was_action = train_net_->scan_action();
  train_net_->set_debug(true, Net::ScanAction::kRecord);
  // The re-run must not move running statistics a second time.
  std::vector<Tensor> state;
  save_state(*train_net_, &state);
  train_net_->set_iter(iter);
  train_net_->clear_param_diffs();
  // The step's batches in order, every rank through the same ones (the head's
  // collectives), up to the first in which some rank found one.
  Net::ScanFinding found;
  for (int b = 0; b < iter_size(); ++b) {
    fill_inputs(*train_net_, true, batch_start(iter, b), slice_.count);
    train_net_->set_batch_in_iter(b);
    train_net_->forward_backward();
    found = train_net_->take_first_nonfinite();
    float any = found.step >= 0 ? 1.f : 0.f;
    host_comm_->all_reduce(&any, 1, ReduceOp::kSum);
    if (any > 0) break;
  }
  train_net_->set_batch_in_iter(0);
  train_net_->set_debug(was, was_action);
  restore_state(*train_net_, state);
  return agree_on_finding(found);
}

// The finding earliest in the pass, on the lowest rank at that step, is the origin
// (later ones, on any rank, are its consequences: the head gathers every rank's
// NaN): one all-reduce of step * N + rank, exact in float below 2^24.
Trainer::NonfiniteFinding Trainer::agree_on_finding(const Net::ScanFinding& found) const {
  const int rank = host_comm_->rank(), n = host_comm_->size();
  const double none = 2.0 * static_cast<double>(train_net_->num_layers()) * n;
  float key = static_cast<float>(found.step < 0 ? none : static_cast<double>(found.step) * n + rank);
  host_comm_->all_reduce(&key, 1, ReduceOp::kMin);
  if (key >= none)
    return {"no layer produced a NaN/Inf when the step was re-run with the per-layer scan"
            " (a non-deterministic fault)",
            false};
  const int origin = static_cast<int>(static_cast<int64_t>(key) % n);
  if (n == 1) return {found.what, true};
  if (origin == rank) return {"rank " + std::to_string(rank) + ": " + found.what, true};
  return {"rank " + std::to_string(origin) + "'s per-layer scan found it first (its log line names the layer)", false};
}

std::string Trainer::describe() const {
  if (cfg_.net_only) return train_net_->describe();
  return plan_;
}

// What a run would hold, planned without building it at its batch: the net is built
// small (engine/memory_plan.h), so a dry run of a million-class head or a large batch
// fits any machine.
void Trainer::plan_dry_run() {
  if (batch_ < ranks_)
    COCO_THROW(opt_.config, ": the batch of ", batch_, " has fewer samples than the ", ranks_, " ranks");
  refuse_what_class_sampling_cannot_do();
  const MemoryPlan plan = plan_memory(cfg_.net, cfg_.net_origin, ranks_, batch_, seed_);
  plan_ = describe_batch(batch_, ranks_, iter_size()) + " (the shapes below are rank 0's share)\n" + plan.layers +
          describe_memory_plan(plan);
}

std::string Trainer::snapshot(int64_t iter) {
  const std::string path = snapshot_prefix_ + "_iter_" + std::to_string(iter) + ".ckpt";
  create_parent_folder(path);
  require_finite_weights(iter, last_snapshot_);
  save_training_checkpoint(path, iter, seed_, opt_.config, *train_net_, *solver_, *comm_, run_id_);
  if (comm_->rank() == 0) spdlog::info("snapshot {}", path);
  last_snapshot_ = path;
  return path;
}

void Trainer::require_finite_weights(int64_t iter, const std::string& last_good) {
  const std::string bad = first_nonfinite_param(*train_net_);
  float any = bad.empty() ? 0.f : 1.f;  // every rank's verdict: sharded rows differ per rank
  host_comm_->all_reduce(&any, 1, ReduceOp::kSum);
  if (any == 0) return;
  COCO_THROW("iteration ", iter, ": ", bad.empty() ? "another rank's parameters hold" : bad + " holds",
             " NaN or Inf, so no checkpoint was written; ",
             last_good.empty() ? std::string("no checkpoint was written in this run")
                               : "the last good checkpoint is " + last_good,
             " (lower base_lr, clip gradients, or check the data)");
}

void Trainer::warn_about_existing_checkpoints() const {
  const auto [dir, name] = split_path(snapshot_prefix_);
  std::error_code ec;
  std::vector<int64_t> later;
  for (std::filesystem::directory_iterator it(dir.empty() ? "." : dir, ec), end; !ec && it != end; it.increment(ec)) {
    const int64_t n = checkpoint_iteration(it->path().filename().string(), name);
    if (n > start_iter_) later.push_back(n);
  }
  if (later.empty()) return;
  std::sort(later.begin(), later.end());
  spdlog::warn("{}: {} checkpoint(s) of an earlier run are here (iterations {} to {}); this run writes its own "
               "under the same names and overwrites those it reaches: use another --snapshot-prefix to keep them",
               snapshot_prefix_, later.size(), later.front(), later.back());
}

// The test set in K balanced global batches (sizes differ by at most one), each
// split over the ranks, so every rank runs the same number of forward passes (the
// head's collectives need that) and no rank gets an empty slice.
Trainer::TestOutcome Trainer::test(int64_t iter) {
  TestOutcome out;
  const int nranks = comm_->size(), rank = comm_->rank();
  int64_t n = test_data_->size();
  if (!cfg_.solver.test_iter().empty() && cfg_.solver.test_iter(0) > 0)
    n = std::min<int64_t>(n, cfg_.solver.test_iter(0) * test_batch_);
  const int64_t K = (n + test_batch_ - 1) / test_batch_;
  if (n < K * nranks)
    COCO_THROW(opt_.config, ": the test pass of ", n, " images in batches of ", test_batch_, " leaves some of the ",
               nranks, " ranks without samples; use a smaller test batch or fewer ranks");
  Blob* data = test_net_->input_blobs()[0];
  Blob* label = test_net_->input_blobs()[1];
  const Shape sample(data->shape().begin() + 1, data->shape().end());
  const auto& names = test_net_->output_names();
  std::vector<float> sums(names.size() + 1, 0.f);  // per output: value * samples; then the count
  std::vector<double> local(names.size(), 0.0);
  for (int64_t k = 0; k < K; ++k) {
    const ShardRange batch = shard_range(n, static_cast<int>(k), static_cast<int>(K));
    const ShardRange mine = shard_range(batch.count, rank, nranks);
    Shape ds{mine.count};
    ds.insert(ds.end(), sample.begin(), sample.end());
    data->reshape(ds);
    label->reshape({mine.count});
    fill_inputs(*test_net_, false, batch.start + mine.start, mine.count);
    test_net_->set_global_batch(batch.count);
    test_net_->forward();
    for (size_t o = 0; o < names.size(); ++o) {
      const auto v = test_net_->blob(names[o])->data().to_vector();
      double s = 0;
      for (float x : v) s += x;
      // A global output is the same on every rank: rank 0 counts it for the batch.
      if (test_net_->output_is_global()[o])
        local[o] += rank == 0 ? s * batch.count : 0.0;
      else
        local[o] += s * mine.count;
    }
  }
  for (size_t o = 0; o < names.size(); ++o) sums[o] = static_cast<float>(local[o]);
  host_comm_->all_reduce(sums.data(), static_cast<int64_t>(sums.size()), ReduceOp::kSum);
  for (size_t o = 0; o < names.size(); ++o) {
    const double mean = sums[o] / n;
    const float w = test_net_->output_weights()[o];
    if (w != 0) out.loss += w * mean;
    if (test_net_->output_is_accuracy()[o] && !out.has_accuracy) {
      out.accuracy = mean;
      out.has_accuracy = true;
    }
    if (rank == 0) spdlog::info("test iter {}: {} = {:.6f}", iter, names[o], mean);
  }
  if (rank == 0)
    spdlog::info("test iter {}: loss {:.6f}{} over {} images", iter, out.loss,
                 out.has_accuracy ? fmt::format(", accuracy {:.4f}", out.accuracy) : std::string(), n);
  return out;
}

TrainResult Trainer::run() {
  COCO_CHECK(!opt_.dry_run && solver_, "run() on a dry-run trainer");
  run_ = std::make_unique<RunState>(opt_.metrics, comm_->rank() == 0, cfg_.solver.average_loss());
  if (const DynamicLossScale* scale = solver_->dynamic_loss_scale())
    run_->result.loss_scale_skipped_steps = scale->skipped();  // a resumed run's count goes on
  last_snapshot_.clear();
  spdlog::info("training {} from iteration {} to {} ({:.2f} epochs of {} samples), {}, {} learnable values, seed {}, "
               "{} CPU thread(s) per rank",
               opt_.config, start_iter_, max_iter_,
               static_cast<double>(max_iter_) * batch_ * iter_size() / train_data_->size(), train_data_->size(),
               describe_batch(batch_, comm_->size(), iter_size()),
               train_net_->num_learnable_values(), seed_, num_threads());
  log_precision();
  if (opt_.debug_gradcheck && max_iter_ > start_iter_) check_gradients_on_first_batch();
  if (validator_ && cfg_.solver.val_initialization() && max_iter_ > start_iter_) run_validation(start_iter_);
  for (int64_t it = start_iter_; it < max_iter_; ++it) {
    if (test_due(it)) run_test_pass(it);
    const StepOutcome step = train_step(it);
    if (step.kind == StepOutcome::kUpdated) record_step(it, step);
    // Due after an FP16 overflow too: such skips are routine and leave finite
    // weights. A step skipped for a NaN (--on-nonfinite skip) writes none.
    const int64_t every = cfg_.solver.snapshot();
    if (step.kind != StepOutcome::kSkipped && every > 0 && (it + 1) % every == 0 && it + 1 < max_iter_)
      run_->result.last_snapshot = snapshot(it + 1);
    if (validation_due(it + 1)) run_validation(it + 1);
  }
  finish_run();
  return run_->result;
}

Trainer::RunState::RunState(const std::string& metrics_path, bool lead, int average_loss)
    : lead(lead), metrics(lead ? metrics_path : std::string()), loss_window(average_loss) {
  result.test_loss = NAN;
}

bool Trainer::test_due(int64_t it) const {
  const auto& s = cfg_.solver;
  return test_net_ && it % s.test_interval() == 0 && (it > start_iter_ || (it == 0 && s.test_initialization()));
}

void Trainer::run_test_pass(int64_t it) {
  const TestOutcome t = test(it);
  run_->result.test_loss = t.loss;
  run_->result.test_accuracy = t.accuracy;
  nlohmann::json j{{"iter", it}, {"test_loss", t.loss}};
  if (t.has_accuracy) j["test_accuracy"] = t.accuracy;
  run_->metrics.write(j);
}

bool Trainer::validation_due(int64_t done) const {
  const int interval = cfg_.solver.val_interval();
  return validator_ && (done == max_iter_ || (interval > 0 && done % interval == 0));
}

// The accuracy in <prefix>_best_<set>.json when this run's settings wrote it (a
// resumed run keeps its best), else -1.
double Trainer::best_accuracy_on_record(const std::string& set) const {
  std::ifstream f(snapshot_prefix_ + "_best_" + set + ".json");
  if (!f) return -1;
  try {
    const auto j = nlohmann::json::parse(f);
    if (j.value("run", std::string()) == run_id_) return j.at("accuracy").get<double>();
  } catch (const std::exception&) {
  }
  return -1;
}

void Trainer::run_validation(int64_t done) {
  for (const ValidationScore& v : validator_->run()) {
    if (run_->lead)
      spdlog::info("val {} iter {}: accuracy {:.5f} +- {:.5f}, XNorm {:.3f} ({} pairs)", v.set, done, v.accuracy,
                   v.std, v.xnorm, v.pairs);
    run_->metrics.write({{"iter", done}, {"val", v.set}, {"accuracy", v.accuracy}, {"std", v.std}, {"xnorm", v.xnorm}});
    // Rank 0 alone reads the record (nodes need not share a filesystem) and tells the
    // others, so every rank takes part in the checkpoint's collectives or none does.
    float better = comm_->rank() == 0 && v.accuracy > best_accuracy_on_record(v.set) ? 1.f : 0.f;
    host_comm_->all_reduce(&better, 1, ReduceOp::kSum);
    if (better == 0) continue;
    const std::string path = snapshot_prefix_ + "_best_" + v.set + ".ckpt";
    create_parent_folder(path);
    require_finite_weights(done, last_snapshot_);
    save_training_checkpoint(path, done, seed_, opt_.config, *train_net_, *solver_, *comm_, run_id_);
    if (comm_->rank() == 0) {
      write_file_atomic(snapshot_prefix_ + "_best_" + v.set + ".json",
                                 nlohmann::json{{"iter", done}, {"set", v.set}, {"accuracy", v.accuracy},
                                                {"std", v.std}, {"xnorm", v.xnorm}, {"run", run_id_}}
                                         .dump() + "\n");
      spdlog::info("val {}: best accuracy so far, kept as {}", v.set, path);
    }
  }
}

// The loss layers' gradients against finite differences, on the first batch.
void Trainer::check_gradients_on_first_batch() {
  fill_inputs(*train_net_, true, batch_start(start_iter_, 0), slice_.count);
  train_net_->set_iter(start_iter_);
  // Finite differences need the fp32 math: a 16-bit rounding step is far larger
  // than their perturbation.
  const Precision precision = train_net_->precision();
  train_net_->set_precision(Precision::kFP32);
  train_net_->set_loss_scale(1.f);
  struct Restore {
    Net& net;
    Precision p;
    ~Restore() { net.set_precision(p); }
  } restore{*train_net_, precision};
  for (const auto& r : check_loss_gradients(*train_net_)) {
    if (run_->lead)
      spdlog::info("debug gradcheck {}: {} entries, {} outside tolerance, worst {:.3g} of tolerance ({})", r.layer,
                   r.checked, r.failed, r.max_error, r.worst);
    if (!r.ok())
      COCO_THROW("debug gradcheck, iteration ", start_iter_, ": layer ", r.layer, ": ", r.failed, " of ", r.checked,
                 " gradient entries disagree with finite differences; worst: ", r.worst);
  }
}

// The first position of batch b of iteration it in the training order (this rank's
// part): iteration it covers iter_size consecutive global batches.
int64_t Trainer::batch_start(int64_t it, int b) const {
  return (it * iter_size() + b) * batch_ + slice_.start;
}

// One iteration: forward and backward of iter_size batches (the diffs sum their
// gradients), the gradients joined across ranks, and the update (of their mean)
// unless the loss or a gradient is not finite on some rank.
Trainer::StepOutcome Trainer::train_step(int64_t it) {
  const auto t0 = Clock::now();
  train_net_->set_iter(it);
  train_net_->clear_param_diffs();
  // A step that may be skipped must not leave its forward's state behind (running
  // statistics): keep a copy of the state blobs to put back.
  if (opt_.skip_nonfinite || solver_->dynamic_loss_scale()) save_state(*train_net_, &run_->state_backup);
  train_net_->set_loss_scale(solver_->loss_scale());
  double local_loss = 0, global_loss = 0;
  for (int b = 0; b < iter_size(); ++b) {
    fill_inputs(*train_net_, true, batch_start(it, b), slice_.count);
    train_net_->set_batch_in_iter(b);  // each batch its own dropout masks
    train_net_->forward_backward();
    local_loss += train_net_->last_local_loss() / iter_size();
    global_loss += train_net_->last_global_loss() / iter_size();
  }
  train_net_->set_batch_in_iter(0);
  reducer_->all_reduce();
  // The global loss: local-mean losses weighted by each rank's share, plus global
  // ones; and whether every rank's loss and gradient are finite (the same verdict
  // on every rank, so all of them skip or stop together).
  // The norm is collective (the shards' part is summed over ranks): every rank takes
  // it every step, before anything that could make one rank skip it.
  const double grad_norm = solver_->gradient_norm();
  float agg[2] = {static_cast<float>(local_loss * slice_.count / batch_), 0.f};
  agg[1] = std::isfinite(global_loss) && std::isfinite(grad_norm) ? 0.f : 1.f;
  host_comm_->all_reduce(agg, 2, ReduceOp::kSum);
  StepOutcome out;
  out.loss = agg[0] + global_loss;
  if (!std::isfinite(out.loss) || agg[1] != 0) {
    // A finite loss with overflowing gradients is FP16's loss scale at work.
    if (std::isfinite(out.loss) && lower_loss_scale(it)) {
      out.kind = StepOutcome::kOverflow;
      return out;
    }
    skip_or_stop_nonfinite(it, out.loss);
    out.kind = StepOutcome::kSkipped;
    return out;
  }
  solver_->apply_update(it, grad_norm);
  if (DynamicLossScale* scale = solver_->dynamic_loss_scale()) scale->grow();
  out.seconds = seconds_since(t0);
  return out;
}

// A non-finite step: names the layer (re-run with the per-layer scan), then stops
// the run or, with --on-nonfinite skip, undoes the step's state and counts it.
void Trainer::skip_or_stop_nonfinite(int64_t it, double loss) {
  TrainResult& result = run_->result;
  const NonfiniteFinding finding = diagnose_nonfinite(it);
  const std::string& why = finding.text;
  if (!opt_.skip_nonfinite)
    COCO_THROW("iteration ", it, ": the loss (", loss, ") or a gradient is not finite: ", why,
               result.last_snapshot.empty() ? std::string("; no checkpoint was written in this run")
                                            : "; the last good checkpoint is " + result.last_snapshot,
               " (lower base_lr or check the data; --on-nonfinite skip skips such steps",
               train_net_->precision() == Precision::kFP16
                   ? "; under precision FP16 a value past 65504 overflows: BF16 keeps fp32's range)"
                   : ")");
  restore_state(*train_net_, run_->state_backup);
  ++result.skipped_steps;
  if (run_->lead || finding.mine)
    spdlog::warn("iteration {}: non-finite loss or gradient, step skipped ({} so far): {}", it, result.skipped_steps,
                 why);
  run_->metrics.write({{"iter", it + 1}, {"skipped_nonfinite", result.skipped_steps}});
}

// BF16/FP16: what runs in the format, and on a CPU that it is an emulation.
void Trainer::log_precision() {
  const Precision p = train_net_->precision();
  if (p == Precision::kFP32 || !run_->lead) return;
  const DynamicLossScale* scale = solver_->dynamic_loss_scale();
  spdlog::info("precision {}: convolutions and GEMMs on {} operands with fp32 sums; fp32 weights, momentum and "
               "softmax statistics{}{}",
               precision_name(p), precision_name(p),
               scale ? fmt::format("; loss scale {} (x2 after {} steps without overflow)", scale->value(),
                                   cfg_.solver.loss_scale_window())
                     : std::string(),
               opt_.device == Device::kCPU ? "; on the CPU the format is emulated (rounded operands): slower than FP32, "
                                             "for checking numerics"
                                           : "");
}

// FP16: gradients that overflowed at the loss scale; the step is undone and the scale
// halved (every rank alike: the verdict was joined). False at a scale of 1, where
// no scaling is left to blame.
bool Trainer::lower_loss_scale(int64_t it) {
  DynamicLossScale* scale = solver_->dynamic_loss_scale();
  if (!scale) return false;
  const float was = scale->value();
  if (!scale->back_off()) return false;
  restore_state(*train_net_, run_->state_backup);
  train_net_->take_first_nonfinite();  // --debug's record of the overflow: handled
  run_->result.loss_scale_skipped_steps = scale->skipped();
  if (run_->lead && !opt_.quiet)
    spdlog::info("iteration {}: FP16 gradients overflowed at loss scale {}, step skipped ({} so far); scale now {}",
                 it, was, scale->skipped(), scale->value());
  run_->metrics.write({{"iter", it + 1}, {"loss_scale", scale->value()}, {"skipped_overflow", scale->skipped()}});
  return true;
}

// After an update: the smoothed loss, the display line and metrics.
void Trainer::record_step(int64_t it, const StepOutcome& step) {
  TrainResult& result = run_->result;
  run_->throughput.add_step(step.seconds, batch_ * iter_size());
  result.last_loss = run_->loss_window.add(step.loss);
  result.iterations = it + 1;
  const auto& s = cfg_.solver;
  if (s.display() > 0 && (it + 1) % s.display() == 0) {
    const double ips = run_->throughput.window_images_per_s();
    const double eta = (max_iter_ - it - 1) * run_->throughput.window_seconds_per_step();
    const double lr = solver_->learning_rate(it);
    if (!opt_.quiet && run_->lead)
      spdlog::info("iter {}/{}  loss {:.5f}  lr {:.3g}  {:.1f} images/s  ETA {}", it + 1, max_iter_, result.last_loss,
                   lr, ips, fmt_duration(eta));
    run_->metrics.write({{"iter", it + 1}, {"loss", result.last_loss}, {"lr", lr}, {"images_per_s", ips}});
    run_->throughput.start_window();
  }
}

// The last test pass and snapshot, and the run's throughput.
void Trainer::finish_run() {
  TrainResult& result = run_->result;
  result.iterations = std::max<int64_t>(max_iter_, start_iter_);
  if (test_net_ && max_iter_ > start_iter_) run_test_pass(max_iter_);
  if (cfg_.solver.snapshot_after_train() && max_iter_ > start_iter_) result.last_snapshot = snapshot(max_iter_);
  result.images_per_s = run_->throughput.run_images_per_s();
  float peak_mib = static_cast<float>(peak_resident_bytes()) / (1 << 20);  // to compare with --dry-run's plan
  host_comm_->all_reduce(&peak_mib, 1, ReduceOp::kMax);
  if (run_->lead)
    spdlog::info("done: {} iterations, {:.1f} images/s (training steps only, all ranks), peak resident memory "
                 "{:.0f} MiB (the largest rank)",
                 result.iterations, result.images_per_s, peak_mib);
}

}  // namespace coco
