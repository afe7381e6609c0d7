// The caching allocator's policy, on a counting host backend: what the CUDA
// runtime relies on to keep cudaMalloc/cudaFree out of the training loop.
#include "engine/caching_allocator.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <set>
#include <vector>

#include "engine/common.h"

namespace coco {
namespace {

struct Backend {
  int64_t allocs = 0, frees = 0;
  int64_t fail_above = -1;  // bytes of live backend memory beyond which allocation fails
  int64_t live = 0;
  std::set<void*> blocks;
  CachingAllocator make() {
    return CachingAllocator(
        [this](size_t n) -> void* {
          if (fail_above >= 0 && live + static_cast<int64_t>(n) > fail_above) return nullptr;
          ++allocs;
          live += static_cast<int64_t>(n);
          void* p = std::malloc(n);
          blocks.insert(p);
          sizes[p] = n;
          return p;
        },
        [this](void* p) {
          ++frees;
          live -= static_cast<int64_t>(sizes[p]);
          blocks.erase(p);
          std::free(p);
        });
  }
  std::map<void*, size_t> sizes;
};

TEST(CachingAllocator, RoundsSmallTo512AndLargeTo2MiB) {
  EXPECT_EQ(CachingAllocator::round_size(0), 512u);
  EXPECT_EQ(CachingAllocator::round_size(1), 512u);
  EXPECT_EQ(CachingAllocator::round_size(513), 1024u);
  EXPECT_EQ(CachingAllocator::round_size((1 << 20) + 1), 2u << 20);
  EXPECT_EQ(CachingAllocator::round_size((5 << 20) + 7), 6u << 20);
}

TEST(CachingAllocator, SteadyStateLoopNeverCallsTheBackend) {
  Backend be;
  auto a = be.make();
  const std::vector<size_t> step = {4000, 1 << 22, 123, 70000, 4000, (3 << 20) + 5};
  for (int it = 0; it < 50; ++it) {
    std::vector<void*> live;
    for (size_t n : step) live.push_back(a.allocate(n));
    for (void* p : live) a.deallocate(p);
    if (it == 0) {
      EXPECT_EQ(be.allocs, static_cast<int64_t>(step.size()));
    }
  }
  EXPECT_EQ(be.allocs, static_cast<int64_t>(step.size()));  // only the first iteration allocated
  EXPECT_EQ(be.frees, 0);
  const auto s = a.stats();
  EXPECT_EQ(s.in_use, 0);
  EXPECT_EQ(s.cache_hits, 49 * static_cast<int64_t>(step.size()));
  EXPECT_GT(s.peak_in_use, static_cast<int64_t>((1 << 22) + (3 << 20)));
  void* one = a.allocate(100);
  a.reset_peak();
  EXPECT_EQ(a.stats().peak_in_use, 512);
  a.deallocate(one);
}

TEST(CachingAllocator, BigCachedBlockIsNotSpentOnASmallRequest) {
  Backend be;
  auto a = be.make();
  void* big = a.allocate(8 << 20);
  a.deallocate(big);
  void* small = a.allocate(1000);  // 8 MiB would waste more than half: a new block
  EXPECT_NE(small, big);
  void* again = a.allocate(5 << 20);  // 6 MiB rounded: the cached 8 MiB block fits
  EXPECT_EQ(again, big);
  EXPECT_EQ(be.allocs, 2);
  a.deallocate(small);
  a.deallocate(again);
}

TEST(CachingAllocator, OwnsInteriorPointersOnly) {
  Backend be;
  auto a = be.make();
  auto* p = static_cast<char*>(a.allocate(1000));
  EXPECT_TRUE(a.owns(p));
  EXPECT_TRUE(a.owns(p + 1023));  // rounded to 1024
  EXPECT_FALSE(a.owns(p + 1024 + (1 << 20)));
  int local = 0;
  EXPECT_FALSE(a.owns(&local));
  a.deallocate(p);
}

TEST(CachingAllocator, ReleasesTheCacheAndRetriesWhenTheBackendIsFull) {
  Backend be;
  be.fail_above = 5 << 20;
  auto a = be.make();
  void* p = a.allocate(2 << 20);
  a.deallocate(p);  // cached: 2 MiB of backend memory still held
  void* q = a.allocate(3 << 20);  // 4 MiB: does not fit beside the cached 2 MiB, so the cache is released and it is retried
  EXPECT_EQ(be.frees, 1);
  EXPECT_EQ(a.stats().cached, 0);
  EXPECT_THROW(a.allocate(1 << 20), Error);  // 2 MiB more: really full, a clear error
  a.deallocate(q);
  a.release_cache();
  EXPECT_EQ(be.live, 0);
}

TEST(CachingAllocator, FreeingAForeignPointerIsAnError) {
  Backend be;
  auto a = be.make();
  int local = 0;
  EXPECT_THROW(a.deallocate(&local), Error);
}

}  // namespace
}  // namespace coco
