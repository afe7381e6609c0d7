// A training run's checkpoint across ranks.
//
// Rank 0 writes the main file: iteration, seed, replicated parameters, their
// momentum, and a manifest of the sharded ones. Every rank writes its rows of each
// sharded parameter (CocoLoss centroids) with their momentum to
// <path>.shard-R-of-N. Shards go first, then a barrier, then the main file: the main
// file is the commit point, and each file is itself written atomically.
// Loading works on any number of ranks: each rank reads the main file and only the
// shard files whose rows overlap its own range (re-sharding on the fly).
#pragma once

#include <string>

#include "comm/communicator.h"
#include "engine/net.h"
#include "engine/solver.h"

namespace coco {

// `run_id` marks the main file and every shard as one run's (the same on all ranks).
void save_training_checkpoint(const std::string& path, int64_t iter, uint64_t seed, const std::string& config,
                              Net& net, SgdSolver& solver, Communicator& comm, const std::string& run_id = "");
// Restores parameters and momentum; returns the checkpoint's iteration.
int64_t load_training_checkpoint(const std::string& path, Net& net, SgdSolver& solver);

}  // namespace coco
