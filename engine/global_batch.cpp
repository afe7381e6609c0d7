#include "engine/global_batch.h"

#include "engine/proto/coco.pb.h"

namespace coco {

int64_t global_batch_size(const proto::DataSourceParameter& source, int ranks) {
  if (source.has_batch_size_per_rank()) return static_cast<int64_t>(source.batch_size_per_rank()) * ranks;
  return source.batch_size();
}

std::string describe_batch(int64_t global, int ranks, int iter_size) {
  if (iter_size > 1)
    return describe_batch(global, ranks) + ", " + std::to_string(iter_size) + " batches (iter_size) of " +
           std::to_string(iter_size * global) + " samples per update";
  const std::string head = "global batch " + std::to_string(global);
  if (ranks <= 1) return head + " on one rank";
  const int64_t low = global / ranks;
  if (global % ranks == 0) return head + " = " + std::to_string(ranks) + " ranks x " + std::to_string(low);
  return head + " over " + std::to_string(ranks) + " ranks (" + std::to_string(low) + " or " +
         std::to_string(low + 1) + " per rank)";
}

}  // namespace coco
