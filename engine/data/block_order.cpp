// Block shuffle order; see block_order.h.
#include "engine/data/block_order.h"

#include <numeric>

#include "engine/common.h"
#include "engine/rng.h"

namespace coco {

namespace {
constexpr uint64_t kBlockStream = 0xB10Cull, kInnerStream = 0x1AAEull;

// Fisher-Yates over [0, n) driven by hash3(seed, stream, i): a pure function.
void permute(std::vector<int64_t>* v, uint64_t seed, uint64_t stream) {
  std::iota(v->begin(), v->end(), int64_t{0});
  for (int64_t i = static_cast<int64_t>(v->size()) - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(hash3(seed, stream, static_cast<uint64_t>(i)) % static_cast<uint64_t>(i + 1));
    std::swap((*v)[i], (*v)[j]);
  }
}
}  // namespace

BlockShuffleOrder::BlockShuffleOrder(int64_t size, int64_t block, uint64_t seed, SampleOrder order)
    : n_(size), block_(block), nblocks_(0), seed_(seed), order_(order) {
  COCO_CHECK(size > 0 && block > 0, "size ", size, ", block ", block);
  nblocks_ = (n_ + block_ - 1) / block_;
}

std::shared_ptr<const std::vector<int64_t>> BlockShuffleOrder::block_perm(int64_t epoch) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [e, p] : cache_)
    if (e == epoch) return p;
  auto p = std::make_shared<std::vector<int64_t>>(nblocks_);
  permute(p.get(), hash3(seed_, kBlockStream, static_cast<uint64_t>(epoch)), kBlockStream);
  if (cache_.size() >= 3) cache_.erase(cache_.begin());
  cache_.emplace_back(epoch, p);
  return p;
}

std::vector<int64_t> BlockShuffleOrder::records(int64_t first, int64_t count) const {
  COCO_CHECK(first >= 0 && count >= 0, "positions [", first, ", +", count, ")");
  std::vector<int64_t> out(count);
  if (order_ == SampleOrder::kSequential) {
    for (int64_t i = 0; i < count; ++i) out[i] = (first + i) % n_;
    return out;
  }
  const int64_t last_block = nblocks_ - 1, last_size = n_ - last_block * block_;
  std::shared_ptr<const std::vector<int64_t>> perm;
  int64_t perm_epoch = -1, inner_block = -1, inner_epoch = -1;
  std::vector<int64_t> inner;
  int64_t q = 0;  // slot of the short last block in this epoch's block order
  for (int64_t i = 0; i < count; ++i) {
    const int64_t p = first + i, epoch = p / n_, r = p % n_;
    if (epoch != perm_epoch) {
      perm = block_perm(epoch);
      perm_epoch = epoch;
      q = 0;
      while ((*perm)[q] != last_block) ++q;
    }
    // Slots before q hold full blocks, slot q the short one, slots after it full ones.
    int64_t blk, off;
    if (r < q * block_) {
      blk = (*perm)[r / block_];
      off = r % block_;
    } else if (r < q * block_ + last_size) {
      blk = last_block;
      off = r - q * block_;
    } else {
      const int64_t k = r - q * block_ - last_size;
      blk = (*perm)[q + 1 + k / block_];
      off = k % block_;
    }
    const int64_t bsize = blk == last_block ? last_size : block_;
    if (blk != inner_block || epoch != inner_epoch) {
      inner.resize(bsize);
      permute(&inner, hash3(seed_, kInnerStream, static_cast<uint64_t>(epoch)), static_cast<uint64_t>(blk));
      inner_block = blk;
      inner_epoch = epoch;
    }
    out[i] = blk * block_ + inner[off];
  }
  return out;
}

}  // namespace coco
