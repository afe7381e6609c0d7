// Bounded prefetch queue; see prefetch.h.
#include "engine/data/prefetch.h"

#include <algorithm>
#include <cstring>

#include "engine/common.h"

namespace coco {

BatchPrefetcher::BatchPrefetcher(Producer produce, int64_t sample_floats, int threads, int depth)
    : produce_(std::move(produce)), sample_floats_(sample_floats), depth_(std::max(depth, 1)), slots_(depth_) {
  COCO_CHECK(threads > 0, "a prefetcher needs at least one thread");
  for (int t = 0; t < threads; ++t) threads_.emplace_back([this] { worker(); });
}

BatchPrefetcher::~BatchPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void BatchPrefetcher::worker() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || (active_ && issue_seq_ < next_seq_ + depth_); });
    if (stop_) return;
    const int64_t seq = issue_seq_++;
    Slot& slot = slots_[seq % depth_];
    slot.seq = seq;
    slot.ready = false;
    slot.error = nullptr;
    const int64_t first = base_ + seq * stride_, count = count_;
    slot.data.resize(count * sample_floats_);
    slot.labels.resize(count);
    ++in_flight_;
    lock.unlock();
    std::exception_ptr err;
    try {
      produce_(first, count, slot.data.data(), slot.labels.data());
    } catch (...) {
      err = std::current_exception();
    }
    lock.lock();
    slot.error = err;
    slot.ready = true;
    --in_flight_;
    cv_.notify_all();
  }
}

void BatchPrefetcher::restart(int64_t first, int64_t count, int64_t stride, std::unique_lock<std::mutex>& lock) {
  active_ = false;
  cv_.wait(lock, [&] { return in_flight_ == 0; });
  for (auto& s : slots_) {
    s.seq = -1;
    s.ready = false;
    s.error = nullptr;
  }
  base_ = first;
  count_ = count;
  stride_ = stride;
  next_seq_ = issue_seq_ = 0;
  active_ = true;
  ++restarts_;
  cv_.notify_all();
}

void BatchPrefetcher::fill(int64_t first, int64_t count, float* data, int32_t* labels) {
  std::unique_lock<std::mutex> lock(mu_);
  const bool predicted = active_ && count == count_ && first == base_ + next_seq_ * stride_;
  if (predicted) {
    ++hits_;
  } else {
    const int64_t stride = prev_first_ >= 0 && first > prev_first_ ? first - prev_first_ : count;
    restart(first, count, stride, lock);
  }
  prev_first_ = first;
  const int64_t seq = next_seq_;
  Slot& slot = slots_[seq % depth_];
  cv_.wait(lock, [&] { return slot.seq == seq && slot.ready; });
  if (slot.error) {
    std::exception_ptr err = slot.error;
    active_ = false;  // the next request starts afresh
    cv_.wait(lock, [&] { return in_flight_ == 0; });
    std::rethrow_exception(err);
  }
  // No worker touches this slot until next_seq_ moves past it, so copy unlocked.
  lock.unlock();
  std::memcpy(data, slot.data.data(), sizeof(float) * count * sample_floats_);
  std::memcpy(labels, slot.labels.data(), sizeof(int32_t) * count);
  lock.lock();
  slot.seq = -1;
  slot.ready = false;
  ++next_seq_;
  cv_.notify_all();
}

}  // namespace coco
