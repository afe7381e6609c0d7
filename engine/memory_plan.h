// The memory plan: what a training run holds on each rank and what its collectives
// move per step, worked out without allocating the run (coco-train --dry-run and
// --ranks N; docs/DESIGN.md, "The memory plan").
//
// Why not build the run and measure it: the activations at a real batch and a head
// of millions of classes are exactly what may not fit the machine one plans on. So
// the backbone is built at one and at three samples per rank with every CocoLoss head
// cut to two classes, and its tensors are counted (live_host_tensor_bytes: the
// parameters, every blob's data and diff, the layers' own buffers, after one
// forward and backward); the per-sample growth scales that to the real batch. The
// heads follow from their formulas: the same plan (plan_coco_head) and buffers the
// head allocates, at the largest shard (rank 0's).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/proto_fwd.h"

namespace coco {

// One CocoLoss head on rank 0, in bytes (traffic: bytes per step, as the
// communicator counts them).
struct HeadMemoryPlan {
  std::string layer;
  int64_t K = 0, Kr = 0, D = 0;
  int64_t computed = 0;  // classes a step computes on this rank: Kr, or at most the sample's
  bool sampled = false, fixed_shift = false;
  int64_t centroids = 0, gradient = 0, momentum = 0, logits_cache = 0, scratch = 0, sampling = 0;
  int64_t all_gather = 0, all_reduce = 0, reduce_scatter = 0;
  int64_t bytes() const { return centroids + gradient + momentum + logits_cache + scratch + sampling; }
};

struct MemoryPlan {
  int ranks = 1;
  int64_t global_batch = 0, batch = 0;  // rank 0's share of the global batch (the largest)
  int64_t params = 0, grads = 0, momentum = 0;  // the replicated parameters (backbone)
  int64_t activations = 0;  // blobs (data and diff) and layer buffers at `batch`
  int64_t process = 0;      // this program before any net (resident)
  std::vector<HeadMemoryPlan> heads;
  int64_t gradient_all_reduce = 0;  // bytes per step: the replicated gradients
  std::string layers;  // the layer table at this rank's share (Net::describe)
  int64_t bytes() const;
};

// The plan of `net` (a training net, train phase) on rank 0 of `ranks`, at a global
// batch split over them as the trainer splits it.
MemoryPlan plan_memory(const proto::NetParameter& net, const std::string& origin, int ranks, int64_t global_batch,
                       uint64_t seed);

// The plan as a table in MiB, and the traffic per step.
std::string describe_memory_plan(const MemoryPlan& plan);

// This process's peak resident memory so far (getrusage), in bytes: what a run
// measures against its plan.
int64_t peak_resident_bytes();

}  // namespace coco
