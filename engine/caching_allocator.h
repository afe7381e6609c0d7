// A caching allocator: blocks freed by tensors are kept in size-ordered free lists
// and handed to the next request that fits, so the steady-state training loop
// never calls the backend (cudaMalloc/cudaFree synchronise the device).
//
// Sizes are rounded up -- to 512 bytes below 1 MiB, to 2 MiB above -- so that
// shapes that vary a little (the last batch of an epoch) reuse blocks. A request
// takes the smallest cached block that fits and is at most twice its size (a big
// block is not wasted on a small request). When the backend fails, the cache is
// released and the request retried once; then the error propagates.
//
// The backend is a pair of functions so that the policy is tested on the CPU
// (tests/test_caching_allocator.cpp); the CUDA runtime owns one per device.
// Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <unordered_map>

namespace coco {

class CachingAllocator {
 public:
  using RawAlloc = std::function<void*(size_t)>;  // returns nullptr on failure
  using RawFree = std::function<void(void*)>;

  CachingAllocator(RawAlloc alloc, RawFree free) : raw_alloc_(std::move(alloc)), raw_free_(std::move(free)) {}
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  static size_t round_size(size_t bytes);

  // Throws coco::Error (with the sizes in use and cached) when even the backend fails.
  void* allocate(size_t bytes);
  void deallocate(void* p);
  // Frees every cached block through the backend.
  void release_cache();
  // True when p points into a block this allocator handed out (any offset).
  bool owns(const void* p) const;

  struct Stats {
    int64_t in_use = 0, cached = 0, peak_in_use = 0;
    int64_t backend_allocs = 0, backend_frees = 0, cache_hits = 0;
  };
  Stats stats() const;
  // Starts a new peak measurement from the bytes in use now.
  void reset_peak();

 private:
  void release_cache_locked();
  RawAlloc raw_alloc_;
  RawFree raw_free_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;              // size -> block
  std::unordered_map<void*, size_t> live_;         // block -> size
  std::map<uintptr_t, size_t> blocks_;             // start -> size (live and cached)
  Stats stats_;
};

}  // namespace coco
