#include "layers/coco_head_plan.h"

#include <algorithm>

#include "engine/common.h"

namespace coco {

int64_t CocoHeadPlan::chunk_width(int64_t ch) const { return std::min(T, shard.count - chunk_begin(ch)); }

int64_t CocoHeadPlan::slot_offset(int64_t ch) const { return std::min(ch, cached_chunks) * slot_stride; }

std::vector<int64_t> CocoHeadPlan::feature_counts() const {
  std::vector<int64_t> c(counts);
  for (auto& v : c) v *= D;
  return c;
}

CocoHeadPlan plan_coco_head(const std::vector<int64_t>& counts, int rank, int64_t D, ShardRange shard,
                            int64_t chunk, double cache_mb, bool train) {
  COCO_CHECK(rank >= 0 && rank < static_cast<int>(counts.size()), "rank ", rank, " of ", counts.size());
  CocoHeadPlan p;
  p.counts = counts;
  p.rank = rank;
  for (int r = 0; r < static_cast<int>(counts.size()); ++r) {
    if (r < rank) p.offset += counts[r];
    p.M += counts[r];
  }
  p.Ml = counts[rank];
  p.D = D;
  p.shard = shard;
  const int64_t Kr = shard.count;
  p.T = chunk == 0 ? std::max<int64_t>(Kr, 1) : chunk;
  p.t_max = std::max<int64_t>(std::min(p.T, Kr), 1);
  p.n_chunks = Kr == 0 ? 0 : (Kr + p.T - 1) / p.T;
  const double chunk_bytes = static_cast<double>(p.M) * p.T * sizeof(float);
  const double budget = cache_mb * (1 << 20);
  p.cached_chunks = train && chunk_bytes > 0 ? std::min<int64_t>(p.n_chunks, static_cast<int64_t>(budget / chunk_bytes)) : 0;
  p.slots = std::max<int64_t>(p.cached_chunks + (p.cached_chunks < p.n_chunks ? 1 : 0), 1);
  p.slot_stride = (p.M * p.t_max + 63) / 64 * 64;
  return p;
}

}  // namespace coco
