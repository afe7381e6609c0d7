#include "layers/class_sampler.h"

#include <algorithm>
#include <cmath>

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

// The shard's local row of a label, or -1 (another shard's class, or none: NaN).
int64_t shard_row(float label, ShardRange shard) {
  if (!(label >= 0)) return -1;
  const int64_t y = static_cast<int64_t>(label) - shard.start;
  return y >= 0 && y < shard.count ? y : -1;
}

// The shard's classes that the batch holds (local rows, ascending, unique).
std::vector<int64_t> positive_rows(const float* labels, int64_t M, ShardRange shard) {
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < M; ++i)
    if (const int64_t y = shard_row(labels[i], shard); y >= 0) rows.push_back(y);
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

// m distinct values of [0, n), ascending, by Floyd's algorithm: m draws, marked in a
// bitmap of n bits (n / 8 bytes; no hashing, and the marks read out in order).
std::vector<int64_t> distinct_below(int64_t n, int64_t m, uint64_t seed, uint64_t stream) {
  std::vector<uint64_t> chosen(static_cast<size_t>((n + 63) / 64), 0);
  const auto has = [&](int64_t v) { return (chosen[v >> 6] >> (v & 63)) & 1; };
  for (int64_t j = n - m; j < n; ++j) {
    int64_t t = uniform_below(hash3(seed, stream, static_cast<uint64_t>(j)), j + 1);
    if (has(t)) t = j;
    chosen[t >> 6] |= uint64_t{1} << (t & 63);
  }
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(m));
  for (size_t w = 0; w < chosen.size(); ++w)
    for (uint64_t bits = chosen[w]; bits != 0; bits &= bits - 1)
      out.push_back(static_cast<int64_t>(w * 64 + static_cast<size_t>(__builtin_ctzll(bits))));
  return out;
}

}  // namespace

int64_t sampled_class_count(int64_t shard_classes, double rate, int64_t positives) {
  // The rate is a float from the config (0.3 is 0.300000012): its last bits must not
  // lift 0.3 x 40 to 13, so it is read back as the 7-digit decimal it was written as.
  // Then rate x K_r is a multiple of 1e-7, and the product's double round-off (below
  // 3e-8 for K_r up to 10^8) is taken off before the ceiling.
  const double written = std::round(rate * 1e7) / 1e7;
  const int64_t want = static_cast<int64_t>(std::ceil(written * static_cast<double>(shard_classes) - 5e-8));
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
    const int64_t y = shard_row(labels[i], shard);
    if (y < 0) continue;
    const auto it = std::lower_bound(rows.begin(), rows.end(), y);
    COCO_CHECK(it != rows.end() && *it == y, "sampled_labels: row ", y + shard.start, " of sample ", i,
               " is not among the sampled rows");
    out[i] = static_cast<float>(it - rows.begin());
  }
  return out;
}

}  // namespace coco
