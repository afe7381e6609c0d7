#include "engine/data_parallel.h"

#include <algorithm>
#include <cstring>

#include "engine/common.h"
#include "engine/device_memory.h"

namespace coco {

GradientReducer::GradientReducer(Net& net, Communicator& comm, double bucket_mb) : net_(net), comm_(comm) {
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(bucket_mb * (1 << 20) / sizeof(float)));
  int64_t filled = 0, largest = 0;
  for (size_t i = 0; i < net.params().size(); ++i) {
    const auto& p = net.params()[i];
    if (!p.learnable || p.sharded) continue;
    const int64_t n = p.blob->count();
    if (buckets_.empty() || filled + n > cap) {
      buckets_.emplace_back();
      filled = 0;
    }
    buckets_.back().push_back(i);
    filled += n;
    largest = std::max(largest, filled);
  }
  largest_ = largest;
}

void GradientReducer::all_reduce() {
  if (comm_.size() == 1) return;
  const auto& params = net_.params();
  if (buffer_.device() != net_.device() || buffer_.count() < largest_) {
    buffer_.set_device(net_.device());
    buffer_.reshape({largest_});
  }
  float* buf = buffer_.data();
  for (const auto& bucket : buckets_) {
    if (bucket.size() == 1) {  // one blob: reduce it in place
      Blob& b = *params[bucket[0]].blob;
      comm_.all_reduce(b.mutable_diff(), b.count(), ReduceOp::kSum);
      continue;
    }
    int64_t off = 0;
    for (size_t i : bucket) {
      const Blob& b = *params[i].blob;
      copy_bytes(buf + off, b.cdiff(), b.count() * sizeof(float));
      off += b.count();
    }
    comm_.all_reduce(buf, off, ReduceOp::kSum);
    off = 0;
    for (size_t i : bucket) {
      Blob& b = *params[i].blob;
      copy_bytes(b.mutable_diff(), buf + off, b.count() * sizeof(float));
      off += b.count();
    }
  }
}

void GradientReducer::broadcast_params(int root) {
  if (comm_.size() == 1) return;
  for (const auto& p : net_.params())
    if (!p.sharded) comm_.broadcast(p.blob->mutable_data(), p.blob->count(), root);
}

}  // namespace coco
