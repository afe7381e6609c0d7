// Worker threads that fill batches ahead of the trainer, in a bounded queue.
//
// Why: JPEG decoding of a face batch takes longer than a GPU step, so it must run
// ahead, on several cores, without changing a single byte: every batch is a pure
// function `produce(first, count)` of its positions, so a prefetched batch equals
// the synchronous one. The queue predicts the next request from the last two
// (same count, same stride: a rank's slices of consecutive global batches are
// `stride` apart); a request it did not predict (a resume, a test) discards the
// queue and restarts from there. At most `depth` batches are held.
// An exception in a worker is rethrown by the fill() that asks for that batch.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace coco {

class BatchPrefetcher {
 public:
  // produce(first, count, data, labels): data (count, sample_floats), labels (count).
  using Producer = std::function<void(int64_t first, int64_t count, float* data, int32_t* labels)>;
  BatchPrefetcher(Producer produce, int64_t sample_floats, int threads, int depth);
  ~BatchPrefetcher();
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  // Exactly what produce(first, count, ...) writes; blocks until it is ready.
  void fill(int64_t first, int64_t count, float* data, int32_t* labels);
  // Requests that were served from the queue / that restarted it (for tests).
  int64_t hits() const { return hits_; }
  int64_t restarts() const { return restarts_; }

 private:
  struct Slot {
    int64_t seq = -1;  // which batch it holds (or is being filled with)
    bool ready = false;
    std::exception_ptr error;
    std::vector<float> data;
    std::vector<int32_t> labels;
  };
  void worker();
  void restart(int64_t first, int64_t count, int64_t stride, std::unique_lock<std::mutex>& lock);

  Producer produce_;
  int64_t sample_floats_;
  int depth_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slot> slots_;
  std::vector<std::thread> threads_;
  bool stop_ = false, active_ = false;
  int64_t base_ = 0, count_ = 0, stride_ = 0;  // batch s = [base + s*stride, +count)
  int64_t next_seq_ = 0, issue_seq_ = 0, in_flight_ = 0;
  int64_t prev_first_ = -1;
  int64_t hits_ = 0, restarts_ = 0;
};

}  // namespace coco
