// Communicator: the collectives the distributed head and data parallelism need.
//
// Why: the CocoLoss head and the solver are written once against this interface.
// Size 1 (LocalCommunicator) is the true identity -- no copies beyond what the
// result requires, and no special cases in the callers. MPI (CPU tensors) and NCCL
// (CUDA tensors) implementations come in their own files. Counts are element
// counts of the buffer's type, never bytes; the counters record bytes and time per
// collective so tests and benchmarks can check the head's traffic (docs/DESIGN.md, "The distributed head").
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace coco {

enum class ReduceOp { kSum, kMax, kMin, kAvg };

enum class Collective { kAllReduce, kAllGather, kReduceScatter, kBroadcast, kBarrier, kCount };
const char* collective_name(Collective c);

struct CollectiveStats {
  int64_t calls = 0;
  int64_t bytes = 0;  // payload bytes of the result, per rank (docs/DESIGN.md, "The distributed head")
  double seconds = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;
  virtual std::string name() const = 0;

  // In place over `count` elements.
  virtual void all_reduce(float* data, int64_t count, ReduceOp op) = 0;
  // recv holds sum(counts) elements, rank r's `counts[r]` elements at offset sum(counts[<r]).
  virtual void all_gather(const float* send, float* recv, const std::vector<int64_t>& counts) = 0;
  // send holds sum(counts) elements; rank r receives the sum over ranks of its block.
  virtual void reduce_scatter(const float* send, float* recv, const std::vector<int64_t>& counts) = 0;
  virtual void broadcast(float* data, int64_t count, int root) = 0;
  virtual void barrier() = 0;

  const CollectiveStats& stats(Collective c) const { return stats_[static_cast<int>(c)]; }
  void reset_stats() { stats_ = {}; }

 protected:
  void record(Collective c, int64_t bytes, double seconds);

 private:
  std::array<CollectiveStats, static_cast<int>(Collective::kCount)> stats_{};
};

// Size 1: every collective is the identity (a copy where send and recv differ,
// on the compute stream for CUDA pointers).
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string name() const override { return "local"; }
  void all_reduce(float* data, int64_t count, ReduceOp op) override;
  void all_gather(const float* send, float* recv, const std::vector<int64_t>& counts) override;
  void reduce_scatter(const float* send, float* recv, const std::vector<int64_t>& counts) override;
  void broadcast(float* data, int64_t count, int root) override;
  void barrier() override;
};

// Contiguous class shard of rank r: [start, start + count), count = K/N + (r < K % N).
struct ShardRange {
  int64_t start = 0;
  int64_t count = 0;
};
ShardRange shard_range(int64_t total, int rank, int size);
// Every rank's shard_range(total, r, size).count, times `width` (elements per row):
// the counts of an all-gather or reduce-scatter of rows split that way.
std::vector<int64_t> shard_counts(int64_t total, int size, int64_t width = 1);

}  // namespace coco
