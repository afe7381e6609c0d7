// The batch convention: coco counts the batch over all ranks together.
//
// batch_size in train_data/test_data (and --batch-size) is the global batch, split
// over the ranks by shard_range, so a schedule in iterations means the same number
// of epochs at any rank count. Caffe and insightface count per GPU; they write
// batch_size_per_rank (--batch-size-per-rank) instead, and the global batch is
// ranks x that. Logs and --dry-run print both numbers (describe_batch).
#pragma once

#include <cstdint>
#include <string>

#include "engine/proto_fwd.h"

namespace coco {

// The global batch a data source asks for at `ranks` ranks.
int64_t global_batch_size(const proto::DataSourceParameter& source, int ranks);

// "global batch 512 = 8 ranks x 64", "global batch 10 over 3 ranks (3 or 4 per rank)",
// "global batch 64 on one rank"; with iter_size > 1 followed by ", 4 batches
// (iter_size) of 256 samples per update".
std::string describe_batch(int64_t global, int ranks, int iter_size = 1);

}  // namespace coco
