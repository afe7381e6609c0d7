// Data parallelism for the replicated parameters (the backbone).
//
// Every rank runs the same net on its slice of the global batch. Local-mean losses
// are weighted by the rank's share of the batch (Net::set_local_fraction), so the
// SUM over ranks of the gradients is the gradient of the global mean -- also when
// the batch does not divide evenly. Gradients are packed into buckets of about
// bucket_mb and summed with one all-reduce per bucket (few large messages instead
// of one per blob). Sharded parameters (CocoLoss centroids) are skipped: each rank
// already holds their complete gradient. On CUDA the buckets live on the device and
// the communicator (NCCL) takes device pointers.
#pragma once

#include <vector>

#include "comm/communicator.h"
#include "engine/net.h"

namespace coco {

class GradientReducer {
 public:
  GradientReducer(Net& net, Communicator& comm, double bucket_mb = 16);
  // Sums the replicated learnable gradients over the ranks (identity at size 1).
  void all_reduce();
  // Rank `root`'s values of every replicated parameter (weights and running
  // statistics) on every rank: one consistent start even if ranks initialised apart.
  void broadcast_params(int root = 0);

 private:
  Net& net_;
  Communicator& comm_;
  std::vector<std::vector<size_t>> buckets_;  // indices into net.params()
  int64_t largest_ = 0;
  Tensor buffer_;  // one bucket, on the parameters' device
};

}  // namespace coco
