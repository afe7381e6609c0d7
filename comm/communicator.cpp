#include "comm/communicator.h"

#include <algorithm>
#include <cstring>

#include "engine/common.h"
#include "engine/device_memory.h"

namespace coco {

const char* collective_name(Collective c) {
  switch (c) {
    case Collective::kAllReduce: return "all_reduce";
    case Collective::kAllGather: return "all_gather";
    case Collective::kReduceScatter: return "reduce_scatter";
    case Collective::kBroadcast: return "broadcast";
    case Collective::kBarrier: return "barrier";
    default: return "?";
  }
}

void Communicator::record(Collective c, int64_t bytes, double seconds) {
  auto& s = stats_[static_cast<int>(c)];
  s.calls += 1;
  s.bytes += bytes;
  s.seconds += seconds;
}

void LocalCommunicator::all_reduce(float* data, int64_t count, ReduceOp op) {
  record(Collective::kAllReduce, count * static_cast<int64_t>(sizeof(float)), 0);
}

void LocalCommunicator::all_gather(const float* send, float* recv, const std::vector<int64_t>& counts) {
  COCO_CHECK(counts.size() == 1, "local all_gather takes one count, got ", counts.size());
  copy_bytes(recv, send, counts[0] * sizeof(float));
  record(Collective::kAllGather, counts[0] * static_cast<int64_t>(sizeof(float)), 0);
}

void LocalCommunicator::reduce_scatter(const float* send, float* recv, const std::vector<int64_t>& counts) {
  COCO_CHECK(counts.size() == 1, "local reduce_scatter takes one count, got ", counts.size());
  copy_bytes(recv, send, counts[0] * sizeof(float));
  record(Collective::kReduceScatter, counts[0] * static_cast<int64_t>(sizeof(float)), 0);
}

void LocalCommunicator::broadcast(float* data, int64_t count, int root) {
  COCO_CHECK(root == 0, "broadcast root ", root, " on a size-1 communicator");
  record(Collective::kBroadcast, count * static_cast<int64_t>(sizeof(float)), 0);
}

void LocalCommunicator::barrier() { record(Collective::kBarrier, 0, 0); }

ShardRange shard_range(int64_t total, int rank, int size) {
  COCO_CHECK(size > 0 && rank >= 0 && rank < size, "bad rank ", rank, " of ", size);
  const int64_t base = total / size, rem = total % size;
  ShardRange r;
  r.count = base + (rank < rem ? 1 : 0);
  r.start = rank * base + std::min<int64_t>(rank, rem);
  return r;
}

std::vector<int64_t> shard_counts(int64_t total, int size, int64_t width) {
  std::vector<int64_t> counts(size);
  for (int r = 0; r < size; ++r) counts[r] = shard_range(total, r, size).count * width;
  return counts;
}

}  // namespace coco
