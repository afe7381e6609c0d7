// The training loop behind coco-train: config -> nets -> solver -> iterations, with
// display (loss, lr, images/s, ETA), test passes, metrics JSON lines, snapshots and
// resume. Everything a step reads is a function of (seed, iteration), so a resumed
// run continues bit for bit where the checkpoint left off (on CPU).
//
// On N ranks (data parallel) the global batch B is split into contiguous slices,
// rank r taking shard_range(B, r, N) of every iteration's positions; gradients of
// the replicated parameters are summed (GradientReducer) and sharded ones stay
// local. Rank 0 alone writes metrics and the main checkpoint file.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "engine/config.h"
#include "engine/data/source.h"
#include "engine/data_parallel.h"
#include "engine/net.h"
#include "engine/solver.h"

namespace coco {

struct AgreedSetting;  // engine/rank_agreement.h
class Validator;       // engine/validation.h

struct TrainOptions {
  std::string config;
  std::string data_root;        // replaces the folder of every data source
  int64_t max_iter = -1;        // overrides the solver's
  int64_t batch_size = -1;      // the global batch (all ranks); overrides the train data's
  int64_t batch_size_per_rank = -1;  // or each rank's share: global = ranks x this
  std::string metrics;          // JSON lines path ("" none)
  std::string snapshot_prefix;  // overrides the solver's
  std::string resume;           // checkpoint to continue from
  std::string weights;          // checkpoint or .caffemodel to start from
  // Layers with parameters that `weights` (a .caffemodel) does not hold and that keep
  // their filler initialisation (fine-tuning a new head); any other such layer is an error.
  std::vector<std::string> weights_keep_fillers;
  int64_t seed = -1;            // overrides random_seed
  // A dry run builds nothing at the real batch: it prints the batch line, the layer
  // table and the memory plan (engine/memory_plan.h) for plan_ranks ranks (0: the
  // ranks it runs on).
  bool dry_run = false;
  int plan_ranks = 0;
  bool quiet = false;           // no per-display log lines (tests)
  Device device = Device::kCPU; // where the nets run (the CUDA device is selected by the caller)
  // Debug mode: a NaN/Inf scan after every layer (Net::set_debug), deterministic
  // algorithms; with debug_gradcheck, a finite-difference check of every loss
  // layer's gradient on the first iteration.
  bool debug = false;
  bool debug_gradcheck = false;
  // A step whose loss or gradient is NaN/Inf: stop (false; the error names the first
  // layer that produced it and no checkpoint is written after the last good one) or
  // skip the update and count it (true).
  bool skip_nonfinite = false;
  // Overrides the solver's precision: "FP32", "BF16" or "FP16" (empty: the config's).
  std::string precision;
};

struct TrainResult {
  int64_t iterations = 0;        // iterations completed in total
  double last_loss = 0;          // smoothed training loss at the end
  double test_loss = 0;          // last test pass (NaN when none ran)
  double test_accuracy = 0;
  double images_per_s = 0;       // over the whole run, test passes excluded
  std::string last_snapshot;
  int64_t skipped_steps = 0;     // non-finite steps skipped (skip_nonfinite)
  int64_t loss_scale_skipped_steps = 0;  // FP16 steps skipped for an overflow (the loss scale halved)
};

class Trainer {
 public:
  // `comm` carries the nets' tensors (NCCL for CUDA tensors on several ranks);
  // `host_comm` the host-side scalars (losses, test sums): MPI, or `comm` when null.
  Trainer(const TrainOptions& opt, Communicator* comm, Communicator* host_comm = nullptr);
  ~Trainer();
  // A dry run's report: the batch line, the layers at this rank's share and the
  // memory plan (a net-only config: its layers as built).
  std::string describe() const;
  TrainResult run();

  Net& train_net() { return *train_net_; }
  SgdSolver& solver() { return *solver_; }
  // Saves a checkpoint of the current state after `iter` iterations (every rank
  // takes part; rank 0 writes the main file).
  std::string snapshot(int64_t iter);

 private:
  struct TestOutcome {
    double loss = 0, accuracy = 0;
    bool has_accuracy = false;
  };
  TestOutcome test(int64_t iter);

  // Construction, in order.
  void read_solver_settings();
  std::vector<AgreedSetting> settings_ranks_share() const;
  void build_train_net();
  void open_data_and_test_net();
  void load_starting_point();

  // What one run() keeps between its steps (metrics file, loss window, throughput).
  struct RunState;
  // What one training step did: updated the parameters, or was skipped (non-finite).
  struct StepOutcome {
    // kOverflow: FP16 gradients overflowed at the loss scale (halved); kSkipped: a
    // non-finite step under --on-nonfinite skip.
    enum Kind { kUpdated, kOverflow, kSkipped } kind = kUpdated;
    double loss = 0;     // the global loss of the batch
    double seconds = 0;  // the step's time (updated steps)
  };
  bool test_due(int64_t iter) const;
  void run_test_pass(int64_t iter);
  // Validation on the verification sets after `done` iterations; a set's new best
  // accuracy keeps <snapshot prefix>_best_<set>.ckpt (and .json beside it).
  bool validation_due(int64_t done) const;
  void run_validation(int64_t done);
  double best_accuracy_on_record(const std::string& set) const;
  void check_gradients_on_first_batch();
  StepOutcome train_step(int64_t iter);
  int iter_size() const { return cfg_.solver.iter_size(); }
  int64_t batch_start(int64_t iter, int b) const;
  void refuse_what_class_sampling_cannot_do() const;
  void plan_dry_run();
  void skip_or_stop_nonfinite(int64_t iter, double loss);
  bool lower_loss_scale(int64_t iter);
  void log_precision();
  void record_step(int64_t iter, const StepOutcome& step);
  void finish_run();
  // Fills a net's inputs (through host staging blobs when the net is on a device).
  void fill_inputs(Net& net, bool train, int64_t first, int64_t count);
  // A non-finite step, re-run on every rank with the per-layer scan: what this rank
  // says about it (`mine`: this rank's own scan found the layer).
  struct NonfiniteFinding {
    std::string text;
    bool mine = false;
  };
  NonfiniteFinding diagnose_nonfinite(int64_t iter);
  NonfiniteFinding agree_on_finding(const Net::ScanFinding& found) const;
  // Throws, naming the layer, unless every rank's parameters are finite.
  void require_finite_weights(int64_t iter, const std::string& last_good);
  // Warns about checkpoints of an earlier run under the snapshot prefix.
  void warn_about_existing_checkpoints() const;

  TrainOptions opt_;
  Communicator* comm_;
  Communicator* host_comm_;
  TrainConfig cfg_;
  Blob host_data_, host_label_;  // staging for device nets
  uint64_t seed_ = 1;
  int64_t batch_ = 0, test_batch_ = 0, max_iter_ = 0;
  std::unique_ptr<DataSource> train_data_, test_data_;
  std::unique_ptr<Net> train_net_, test_net_;
  std::unique_ptr<Validator> validator_;
  std::unique_ptr<SgdSolver> solver_;
  std::unique_ptr<GradientReducer> reducer_;
  ShardRange slice_;  // this rank's part of every global training batch
  int64_t start_iter_ = 0;
  std::string snapshot_prefix_;
  std::string run_id_;  // marks this run's checkpoint files: a hash of its settings
  std::string last_snapshot_;  // the last checkpoint this run wrote (all of it finite)
  std::string plan_;  // a dry run's report
  int ranks_ = 1;     // the ranks the batch is split over (plan_ranks in a dry run)
  std::unique_ptr<RunState> run_;  // made by run()
};

}  // namespace coco
