// Class sampling for the COCO head (sample_rate < 1, insightface's Partial FC idea;
// docs/DESIGN.md, "Class sampling"): which of a rank's classes one training step
// computes logits for.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/communicator.h"

namespace coco {

// How many of a shard's K_r classes a step keeps: ceil(rate * K_r), at most K_r,
// and never fewer than the positives (the batch's classes this rank owns). The rate
// counts as the decimal of at most 7 digits that a config writes (0.3, not the float
// 0.300000012).
int64_t sampled_class_count(int64_t shard_classes, double rate, int64_t positives);

// The local rows (ascending, in [0, shard.count)) one step keeps on one rank: every
// class of `labels` (the gathered global batch, M floats; negative or NaN ones are
// in no shard) in this shard, and others
// drawn uniformly without replacement from the rest of the shard until
// sampled_class_count are kept. A pure function of its arguments: the draw depends
// on (seed, iter, rank) only, so a resumed run draws the same sets.
std::vector<int64_t> sample_shard_classes(const float* labels, int64_t M, ShardRange shard, double rate,
                                          uint64_t seed, int64_t iter, int rank);

// The batch's labels in the sampled classes' numbering on this rank: a label this
// rank owns becomes its row's position in `rows`; every other label becomes -1 (no
// column here). rows must hold every owned label (sample_shard_classes does).
std::vector<float> sampled_labels(const float* labels, int64_t M, ShardRange shard, const std::vector<int64_t>& rows);

}  // namespace coco
