#include "engine/rank_agreement.h"

#include <algorithm>

#include "engine/checkpoint.h"  // fnv1a
#include "engine/common.h"

namespace coco {

namespace {

// A value as two floats holding 24 bits of its hash each: collectives carry floats,
// which hold integers below 2^24 exactly. 48 bits make a false "equal" negligible.
void hash_as_floats(const std::string& value, float* out) {
  const uint64_t h = fnv1a(value.data(), value.size());
  out[0] = static_cast<float>(h & 0xFFFFFF);
  out[1] = static_cast<float>((h >> 24) & 0xFFFFFF);
}

// A value short enough to print; a config's whole text is only said to differ.
std::string shown(const std::string& value) {
  return value.size() <= 80 ? "'" + value + "'" : "a text of " + std::to_string(value.size()) + " bytes";
}

}  // namespace

void require_ranks_agree(const std::vector<AgreedSetting>& settings, Communicator& comm) {
  if (comm.size() == 1) return;
  const size_t n = settings.size();
  std::vector<float> mine(2 * n);
  for (size_t i = 0; i < n; ++i) hash_as_floats(settings[i].value, &mine[2 * i]);
  std::vector<float> root = mine;
  comm.broadcast(root.data(), static_cast<int64_t>(root.size()), 0);
  // Per setting: the lowest rank whose value differs from rank 0's (size: none).
  std::vector<float> first(n);
  for (size_t i = 0; i < n; ++i) {
    const bool same = mine[2 * i] == root[2 * i] && mine[2 * i + 1] == root[2 * i + 1];
    first[i] = static_cast<float>(same ? comm.size() : comm.rank());
  }
  comm.all_reduce(first.data(), static_cast<int64_t>(n), ReduceOp::kMin);
  std::string differs;
  for (size_t i = 0; i < n; ++i) {
    if (first[i] >= comm.size()) continue;
    differs += (differs.empty() ? "" : "; ") + settings[i].name + " differs on rank " +
               std::to_string(static_cast<int>(first[i])) + " from rank 0's (this rank, " +
               std::to_string(comm.rank()) + ", has " + shown(settings[i].value) + ")";
  }
  if (!differs.empty())
    COCO_THROW("the ranks of this job were started with different settings: ", differs,
               "; start every rank with the same config and flags");
}

}  // namespace coco
