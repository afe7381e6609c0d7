// The CocoLoss head's plan for one forward: who holds which rows of the global
// batch, how this rank's classes are cut into chunks, and which chunks' logits stay
// cached for the backward. Device-neutral: the CPU and the CUDA head follow the
// same plan, so their cache sizes and chunk boundaries are equal by construction
// (docs/DESIGN.md, "The distributed head").
#pragma once

#include <cstdint>
#include <vector>

#include "comm/communicator.h"

namespace coco {

struct CocoHeadPlan {
  // The global batch: rank r holds counts[r] rows starting at row offsets[r].
  std::vector<int64_t> counts;
  int rank = 0;
  int64_t M = 0;       // global batch
  int64_t Ml = 0;      // this rank's rows
  int64_t offset = 0;  // this rank's first row
  int64_t D = 0;       // feature size
  ShardRange shard;    // this rank's classes [start, start + count)

  // Chunks of T local classes; the widest one has t_max classes.
  int64_t T = 1, t_max = 1, n_chunks = 0;
  // The first cached_chunks chunks keep their M x t logits until the backward; the
  // rest share one more slot and are recomputed there. Each slot holds M x t_max
  // floats, padded to 64 floats so every GEMM output starts equally aligned (cuBLAS
  // then picks the same kernel for cached and recomputed chunks).
  int64_t cached_chunks = 0, slots = 1, slot_stride = 0;

  int64_t chunk_begin(int64_t ch) const { return ch * T; }  // local class index
  int64_t chunk_width(int64_t ch) const;
  int64_t slot_offset(int64_t ch) const;  // floats into the logits buffer
  int64_t logits_floats() const { return slots * slot_stride; }
  std::vector<int64_t> feature_counts() const;  // counts[r] * D
};

// chunk == 0 means one chunk over the whole shard. The cache budget counts M x T
// floats per chunk (logits_cache_mb); only a train forward caches.
CocoHeadPlan plan_coco_head(const std::vector<int64_t>& counts, int rank, int64_t D, ShardRange shard,
                            int64_t chunk, double cache_mb, bool train);

}  // namespace coco
