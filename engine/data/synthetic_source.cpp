// The "synthetic:K" data source: an MS1M-sized identity set with no files.
//
// Identity k has a prototype vector p_k ~ N(0, 1) drawn from (seed, k); sample j of
// it is p_k + noise * N(0, 1) drawn from (seed, k, j) -- a pure function, so each
// rank generates only its own slice of a batch and a resumed run sees the same
// samples. The training order is a keyed pseudo-random permutation of all K * S
// samples per epoch (a 4-round Feistel network with cycle walking): no table of
// millions of indices is stored.
#include <cmath>
#include <memory>

#include "engine/common.h"
#include "engine/data/source.h"
#include "engine/rng.h"

namespace coco {

namespace {

// A bijection of [0, n) keyed by `key`.
uint64_t permute(uint64_t x, uint64_t n, uint64_t key) {
  int bits = 2;
  while ((uint64_t{1} << bits) < n) bits += 2;
  const int half = bits / 2;
  const uint64_t mask = (uint64_t{1} << half) - 1;
  do {
    uint64_t l = x >> half, r = x & mask;
    for (uint64_t round = 0; round < 4; ++round) {
      const uint64_t f = hash3(key, round, r) & mask;
      const uint64_t t = l ^ f;
      l = r;
      r = t;
    }
    x = (l << half) | r;
  } while (x >= n);
  return x;
}

float gaussian(uint64_t seed, uint64_t stream, uint64_t index) {
  const float u1 = std::max(uniform01(seed, stream, 2 * index), 1e-7f);
  const float u2 = uniform01(seed, stream, 2 * index + 1);
  return std::sqrt(-2.f * std::log(u1)) * std::cos(6.2831853f * u2);
}

class SyntheticSource final : public DataSource {
 public:
  SyntheticSource(int64_t identities, const proto::DataSourceParameter& p, uint64_t seed, const std::string& origin)
      : k_(identities), seed_(seed), shuffle_(p.shuffle()), noise_(p.synthetic_noise()) {
    if (p.synthetic_shape_size() == 0) COCO_THROW(origin, ": synthetic data needs synthetic_shape (e.g. 1, 16, 16)");
    for (auto d : p.synthetic_shape()) {
      if (d <= 0) COCO_THROW(origin, ": synthetic_shape has a non-positive dimension ", d);
      shape_.push_back(d);
    }
    dim_ = shape_count(shape_);
    test_ = p.split() == "test";
    if (!test_ && p.split() != "train") COCO_THROW(origin, ": synthetic split must be train or test, got ", p.split());
    per_id_ = test_ ? p.synthetic_test_per_identity() : p.synthetic_samples_per_identity();
    first_j_ = test_ ? p.synthetic_samples_per_identity() : 0;
    if (per_id_ <= 0) COCO_THROW(origin, ": synthetic samples per identity must be positive");
  }
  int64_t size() const override { return k_ * per_id_; }
  Shape sample_shape() const override { return shape_; }
  std::string describe() const override {
    return "synthetic:" + std::to_string(k_) + " (" + (test_ ? "test" : "train") + ", " + std::to_string(size()) +
           " samples)";
  }
  void fill_train(int64_t first, int64_t count, float* data, int32_t* labels) const override {
    const int64_t n = size();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i) {
      const int64_t pos = first + i, epoch = pos / n, at = pos % n;
      const int64_t s = shuffle_ ? static_cast<int64_t>(permute(at, n, mix64(seed_ ^ mix64(epoch + 1)))) : at;
      make(s, data + i * dim_, labels + i);
    }
  }
  void fill_range(int64_t start, int64_t n, float* data, int32_t* labels) const override {
    if (start < 0 || start + n > size()) COCO_THROW(describe(), ": samples [", start, ", ", start + n, ") out of range");
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) make(start + i, data + i * dim_, labels + i);
  }

 private:
  // Sample s = identity s / per_id, index first_j + s % per_id.
  void make(int64_t s, float* out, int32_t* label) const {
    const int64_t k = s / per_id_, j = first_j_ + s % per_id_;
    const uint64_t proto_stream = mix64(static_cast<uint64_t>(k) * 2 + 1);
    const uint64_t noise_stream = hash3(static_cast<uint64_t>(k), static_cast<uint64_t>(j), 7);
    for (int64_t d = 0; d < dim_; ++d)
      out[d] = gaussian(seed_, proto_stream, d) + noise_ * gaussian(seed_, noise_stream, d);
    *label = static_cast<int32_t>(k);
  }

  int64_t k_;
  uint64_t seed_;
  bool shuffle_;
  float noise_;
  Shape shape_;
  int64_t dim_ = 0;
  bool test_ = false;
  int64_t per_id_ = 0, first_j_ = 0;
};

}  // namespace

std::unique_ptr<DataSource> open_synthetic_source(const std::string& what, const proto::DataSourceParameter& p,
                                                  uint64_t seed, const std::string& origin) {
  int64_t k = 0;
  try {
    size_t used = 0;
    k = std::stoll(what, &used);
    if (used != what.size() || k <= 0) throw std::invalid_argument("");
  } catch (const std::exception&) {
    COCO_THROW(origin, ": synthetic source needs a positive identity count, got 'synthetic:", what, "'");
  }
  if (k > kMaxClassId + 1)
    COCO_THROW(origin, ": synthetic:", k, " has more identities than int32 class ids name (", kMaxClassId + 1, ")");
  return std::make_unique<SyntheticSource>(k, p, seed, origin);
}

}  // namespace coco
