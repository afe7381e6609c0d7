// The training order of an image source: a block shuffle, pure in (seed, position).
//
// Why: random access into a .rec file of millions of small JPEGs is the known
// bottleneck of other engines' readers; reading whole runs of consecutive records
// is not. So each epoch permutes blocks of `block` consecutive records (the last
// block may be short) from (seed, epoch), then permutes the records inside each
// block from (seed, epoch, block). Position p of the training sequence is record
// order(p) of epoch p / n. A batch of consecutive positions therefore touches
// about count / block whole blocks, each read with one sequential read; a rank
// that is given its own slice of positions touches only its own blocks. block = 1
// is a full per-sample shuffle; SampleOrder::kSequential is the file order.
//
// Thread safety: const methods may be called from several threads (the block
// permutation of the last epochs is cached behind a mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/data/mnist.h"  // SampleOrder

namespace coco {

class BlockShuffleOrder {
 public:
  BlockShuffleOrder(int64_t size, int64_t block, uint64_t seed, SampleOrder order);
  int64_t size() const { return n_; }
  int64_t block() const { return block_; }
  // Records of positions [first, first + count) of the training sequence.
  std::vector<int64_t> records(int64_t first, int64_t count) const;
  int64_t record(int64_t position) const { return records(position, 1)[0]; }

 private:
  std::shared_ptr<const std::vector<int64_t>> block_perm(int64_t epoch) const;
  int64_t n_, block_, nblocks_;
  uint64_t seed_;
  SampleOrder order_;
  mutable std::mutex mu_;
  mutable std::vector<std::pair<int64_t, std::shared_ptr<const std::vector<int64_t>>>> cache_;  // (epoch, perm)
};

}  // namespace coco
