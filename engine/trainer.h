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

#include "comm/communicator.h"
#include "engine/config.h"
#include "engine/data/source.h"
#include "engine/data_parallel.h"
#include "engine/net.h"
#include "engine/solver.h"

namespace coco {

struct TrainOptions {
  std::string config;
  std::string data_root;        // replaces the folder of every data source
  int64_t max_iter = -1;        // overrides the solver's
  int64_t batch_size = -1;      // overrides the train data's
  std::string metrics;          // JSON lines path ("" none)
  std::string snapshot_prefix;  // overrides the solver's
  std::string resume;           // checkpoint to continue from
  std::string weights;          // checkpoint or .caffemodel to start from
  int64_t seed = -1;            // overrides random_seed
  bool dry_run = false;
  bool quiet = false;           // no per-display log lines (tests)
};

struct TrainResult {
  int64_t iterations = 0;        // iterations completed in total
  double last_loss = 0;          // smoothed training loss at the end
  double test_loss = 0;          // last test pass (NaN when none ran)
  double test_accuracy = 0;
  double images_per_s = 0;       // over the whole run, test passes excluded
  std::string last_snapshot;
};

class Trainer {
 public:
  Trainer(const TrainOptions& opt, Communicator* comm);
  // Builds the net and prints its layers (dry run).
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

  TrainOptions opt_;
  Communicator* comm_;
  TrainConfig cfg_;
  uint64_t seed_ = 1;
  int64_t batch_ = 0, test_batch_ = 0, max_iter_ = 0;
  std::unique_ptr<DataSource> train_data_, test_data_;
  std::unique_ptr<Net> train_net_, test_net_;
  std::unique_ptr<SgdSolver> solver_;
  std::unique_ptr<GradientReducer> reducer_;
  ShardRange slice_;  // this rank's part of every global training batch
  int64_t start_iter_ = 0;
  std::string snapshot_prefix_;
};

// Sets the batch axis of every input of a net (legacy inputs and Input layers).
void set_input_batch(proto::NetParameter* net, int64_t batch);

}  // namespace coco
