#include "engine/filler.h"

#include <cmath>

#include "engine/common.h"

namespace coco {

void fill(const proto::FillerParameter& p, Tensor& t, Rng& rng) {
  COCO_CHECK(t.device() == Device::kCPU, "fillers run on CPU tensors");
  float* d = t.data();
  const int64_t n = t.count();
  const std::string& type = p.type();
  if (type == "constant") {
    t.fill(p.value());
    return;
  }
  if (n == 0) return;
  const double fan_in = t.num_axes() > 0 ? static_cast<double>(n) / t.shape(0) : 1.0;
  const double fan_out = t.num_axes() > 1 ? static_cast<double>(n) / t.shape(1) : fan_in;
  double denom = fan_in;
  if (p.variance_norm() == proto::FillerParameter::FAN_OUT) denom = fan_out;
  if (p.variance_norm() == proto::FillerParameter::AVERAGE) denom = (fan_in + fan_out) / 2;
  if (type == "gaussian") {
    std::normal_distribution<double> dist(p.mean(), p.std());
    for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(dist(rng));
  } else if (type == "uniform") {
    COCO_CHECK(p.min() <= p.max(), "uniform filler min > max");
    std::uniform_real_distribution<double> dist(p.min(), p.max());
    for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(dist(rng));
  } else if (type == "xavier") {
    const double scale = std::sqrt(3.0 / denom);
    std::uniform_real_distribution<double> dist(-scale, scale);
    for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(dist(rng));
  } else if (type == "msra") {
    std::normal_distribution<double> dist(0.0, std::sqrt(2.0 / denom));
    for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(dist(rng));
  } else {
    COCO_THROW("unknown filler type '", type, "' (expected constant, gaussian, uniform, xavier or msra)");
  }
}

}  // namespace coco
