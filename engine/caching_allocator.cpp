#include "engine/caching_allocator.h"

#include <algorithm>

#include "engine/common.h"

namespace coco {

namespace {
constexpr size_t kSmall = 1 << 20;        // below: 512-byte granularity
constexpr size_t kSmallRound = 512;
constexpr size_t kLargeRound = 2 << 20;   // above: 2 MiB granularity
}  // namespace

size_t CachingAllocator::round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  const size_t g = bytes < kSmall ? kSmallRound : kLargeRound;
  return (bytes + g - 1) / g * g;
}

CachingAllocator::~CachingAllocator() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cache_locked();
  // Live blocks belong to tensors that outlive the allocator (static teardown order);
  // they are left to the driver, which frees everything at exit.
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  // Smallest cached block that fits and wastes at most half of itself.
  auto it = free_.lower_bound(size);
  if (it != free_.end() && it->first <= 2 * size) {
    void* p = it->second;
    const size_t have = it->first;
    free_.erase(it);
    live_.emplace(p, have);
    stats_.cached -= static_cast<int64_t>(have);
    stats_.in_use += static_cast<int64_t>(have);
    stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
    stats_.cache_hits += 1;
    return p;
  }
  void* p = raw_alloc_(size);
  if (!p && !free_.empty()) {
    release_cache_locked();
    p = raw_alloc_(size);
  }
  if (!p)
    COCO_THROW("out of device memory allocating ", size, " bytes (", stats_.in_use, " bytes in use by tensors, ",
               stats_.cached, " cached)");
  stats_.backend_allocs += 1;
  live_.emplace(p, size);
  blocks_.emplace(reinterpret_cast<uintptr_t>(p), size);
  stats_.in_use += static_cast<int64_t>(size);
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  return p;
}

void CachingAllocator::deallocate(void* p) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(p);
  COCO_CHECK(it != live_.end(), "caching allocator: freeing a pointer it did not hand out");
  const size_t size = it->second;
  live_.erase(it);
  free_.emplace(size, p);
  stats_.in_use -= static_cast<int64_t>(size);
  stats_.cached += static_cast<int64_t>(size);
}

void CachingAllocator::release_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cache_locked();
}

void CachingAllocator::release_cache_locked() {
  for (auto& kv : free_) {
    raw_free_(kv.second);
    blocks_.erase(reinterpret_cast<uintptr_t>(kv.second));
    stats_.cached -= static_cast<int64_t>(kv.first);
    stats_.backend_frees += 1;
  }
  free_.clear();
}

bool CachingAllocator::owns(const void* p) const {
  const auto a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blocks_.upper_bound(a);
  if (it == blocks_.begin()) return false;
  --it;
  return a < it->first + it->second;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_in_use = stats_.in_use;
}

CachingAllocator::Stats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace coco
