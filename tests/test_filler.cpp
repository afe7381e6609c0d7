// Fillers: each one's distribution against its definition (moments over many draws).
#include "engine/filler.h"

#include <gtest/gtest.h>

#include <cmath>

#include "engine/common.h"
#include "engine/config.h"

namespace coco {
namespace {

proto::FillerParameter filler(const std::string& text) {
  proto::FillerParameter p;
  parse_text(text, "<filler>", &p);
  return p;
}

struct Moments {
  double mean = 0, var = 0, min = 1e30, max = -1e30;
};
Moments moments(const Tensor& t) {
  Moments m;
  for (int64_t i = 0; i < t.count(); ++i) {
    const double v = t.at(i);
    m.mean += v;
    m.min = std::min(m.min, v);
    m.max = std::max(m.max, v);
  }
  m.mean /= t.count();
  for (int64_t i = 0; i < t.count(); ++i) m.var += (t.at(i) - m.mean) * (t.at(i) - m.mean);
  m.var /= t.count();
  return m;
}

TEST(Filler, Constant) {
  Tensor t({3, 4});
  Rng rng(1);
  fill(filler("type: \"constant\" value: 2.5"), t, rng);
  for (int64_t i = 0; i < t.count(); ++i) EXPECT_EQ(t.at(i), 2.5f);
}

TEST(Filler, GaussianAndUniform) {
  Tensor t({200, 500});
  Rng rng(2);
  fill(filler("type: \"gaussian\" mean: 1 std: 0.5"), t, rng);
  auto m = moments(t);
  EXPECT_NEAR(m.mean, 1.0, 0.01);
  EXPECT_NEAR(m.var, 0.25, 0.01);
  fill(filler("type: \"uniform\" min: -2 max: 3"), t, rng);
  m = moments(t);
  EXPECT_GE(m.min, -2.0);
  EXPECT_LT(m.max, 3.0);
  EXPECT_NEAR(m.mean, 0.5, 0.02);
  EXPECT_NEAR(m.var, 25.0 / 12, 0.03);
}

TEST(Filler, XavierAndMsraFollowTheFan) {
  // Weight (64, 32, 3, 3): fan_in = 32*9 = 288, fan_out = 64*9 = 576.
  Tensor t({64, 32, 3, 3});
  Rng rng(3);
  fill(filler("type: \"xavier\""), t, rng);
  auto m = moments(t);
  const double a = std::sqrt(3.0 / 288);
  EXPECT_LE(m.max, a);
  EXPECT_GE(m.min, -a);
  EXPECT_NEAR(m.var, a * a / 3, 0.05 * a * a / 3);
  fill(filler("type: \"xavier\" variance_norm: AVERAGE"), t, rng);
  EXPECT_NEAR(moments(t).var, 1.0 / 432, 0.05 / 432);  // 3/((288+576)/2) / 3
  fill(filler("type: \"msra\""), t, rng);
  EXPECT_NEAR(moments(t).var, 2.0 / 288, 0.05 * 2.0 / 288);
  fill(filler("type: \"msra\" variance_norm: FAN_OUT"), t, rng);
  EXPECT_NEAR(moments(t).var, 2.0 / 576, 0.05 * 2.0 / 576);
}

TEST(Filler, SameSeedSameValuesAndUnknownTypeIsAnError) {
  Tensor a({10, 10}), b({10, 10});
  Rng r1(9), r2(9);
  fill(filler("type: \"gaussian\""), a, r1);
  fill(filler("type: \"gaussian\""), b, r2);
  EXPECT_EQ(a.to_vector(), b.to_vector());
  Rng r3(1);
  try {
    fill(filler("type: \"bilinear\""), a, r3);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bilinear"), std::string::npos);
  }
}

}  // namespace
}  // namespace coco
