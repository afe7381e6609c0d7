// The COCO head's golden cases (tools/golden/coco_head_golden.py, an independent
// double-precision implementation, -> tests/data/coco_head_golden.txt), read by the
// CPU and the CUDA head tests alike.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace coco::testing {

struct GoldenCase {
  std::string name, mode, logit, margin_type;
  double margin = 0;
  int64_t M = 0, D = 0, K = 0;
  double alpha = 0;
  std::map<std::string, std::vector<double>> v;  // x, labels, centroids, loss, grad_x, grad_c
};

// "case NAME M D K ALPHA MODE LOGIT MARGIN_TYPE MARGIN", then "KEY N v1 .. vN"
// lines for that case, up to "end".
inline std::vector<GoldenCase> read_golden() {
  std::ifstream in(std::string(COCO_TEST_DATA) + "/coco_head_golden.txt");
  EXPECT_TRUE(in.good()) << "missing golden file";
  std::vector<GoldenCase> cases;
  std::string key;
  while (in >> key) {
    if (key == "end") break;
    if (key == "case") {
      GoldenCase c;
      in >> c.name >> c.M >> c.D >> c.K >> c.alpha >> c.mode >> c.logit >> c.margin_type >> c.margin;
      cases.push_back(c);
      continue;
    }
    size_t n;
    in >> n;
    std::vector<double> vals(n);
    for (auto& x : vals) in >> x;
    cases.back().v[key] = vals;
  }
  return cases;
}

// The case's settings as coco_loss_param fields (logit type, scale, update, margin).
inline std::string golden_extra(const GoldenCase& gc) {
  std::ostringstream s;
  s.precision(17);
  s << "logit_type: " << gc.logit;
  if (gc.logit == "COSINE") s << " scale: " << gc.alpha << " centroid_update: " << gc.mode;
  if (gc.margin_type != "NONE") s << " margin_type: " << gc.margin_type << " margin: " << gc.margin;
  return s.str();
}

}  // namespace coco::testing
