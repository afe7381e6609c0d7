#include "layers/class_sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "engine/common.h"
#include "engine/rng.h"

namespace coco {

namespace {

// The draw's stream: one per (iteration, rank), apart from every other use of the seed.
constexpr uint64_t kSamplerStream = 0x636f636f53414d50ull;  // "cocoSAMP"

// Uniform in [0, n) from a 64-bit hash (multiply-shift: no modulo bias worth naming).
int64_t uniform_below(uint64_t h, int64_t n) {
  return static_cast<int64_t>((static_cast<unsigned __int128>(h) * static_cast<uint64_t>(n)) >> 64);
}

// The shard's classes that the batch holds (local rows, ascending, unique).
std::vector<int64_t> positive_rows(const float* labels, int64_t M, ShardRange shard) {
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < M; ++i) {
    const int64_t y = static_cast<int64_t>(labels[i]) - shard.start;
    if (y >= 0 && y < shard.count) rows.push_back(y);
  }
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

// m distinct values of [0, n), by Floyd's algorithm: m draws, whatever n.
std::vector<int64_t> distinct_below(int64_t n, int64_t m, uint64_t seed, uint64_t stream) {
  std::unordered_set<int64_t> chosen;
  chosen.reserve(static_cast<size_t>(m) * 2);
  for (int64_t j = n - m; j < n; ++j) {
    const int64_t t = uniform_below(hash3(seed, stream, static_cast<uint64_t>(j)), j + 1);
    chosen.insert(chosen.count(t) ? j : t);
  }
  std::vector<int64_t> out(chosen.begin(), chosen.end());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

int64_t sampled_class_count(int64_t shard_classes, double rate, int64_t positives) {
  // The rate is a float from the config (0.3 is 0.300000012): its last bits must not
  // lift 0.3 x 40 to 13, so the product gives up one part in 2^23 before the ceiling.
  const double product = rate * static_cast<double>(shard_classes) * (1.0 - 0x1p-23);
  const int64_t want = static_cast<int64_t>(std::ceil(product));
  return std::max(positives, std::min(shard_classes, want));
}

std::vector<int64_t> sample_shard_classes(const float* labels, int64_t M, ShardRange shard, double rate,
                                          uint64_t seed, int64_t iter, int rank) {
  const std::vector<int64_t> pos = positive_rows(labels, M, shard);
  const int64_t P = static_cast<int64_t>(pos.size());
  const int64_t extra = sampled_class_count(shard.count, rate, P) - P;
  const uint64_t stream = hash3(kSamplerStream, static_cast<uint64_t>(iter), static_cast<uint64_t>(rank));
  // Draw among the K_r - P other classes by their rank q, then map q to its row by
  // stepping over the positives (both ascending: one merge).
  const std::vector<int64_t> drawn = distinct_below(shard.count - P, extra, seed, stream);
  std::vector<int64_t> rows;
  rows.reserve(static_cast<size_t>(P + extra));
  size_t p = 0;
  for (int64_t q : drawn) {
    while (p < pos.size() && pos[p] <= q + static_cast<int64_t>(p)) rows.push_back(pos[p++]);
    rows.push_back(q + static_cast<int64_t>(p));
  }
  while (p < pos.size()) rows.push_back(pos[p++]);
  return rows;
}

std::vector<float> sampled_labels(const float* labels, int64_t M, ShardRange shard, const std::vector<int64_t>& rows) {
  std::vector<float> out(M, -1.f);
  for (int64_t i = 0; i < M; ++i) {
    const int64_t y = static_cast<int64_t>(labels[i]) - shard.start;
    if (y < 0 || y >= shard.count) continue;
    const auto it = std::lower_bound(rows.begin(), rows.end(), y);
    COCO_CHECK(it != rows.end() && *it == y, "sampled_labels: class ", y + shard.start, " of sample ", i,
               " is not among the sampled rows");
    out[i] = static_cast<float>(it - rows.begin());
  }
  return out;
}

}  // namespace coco
