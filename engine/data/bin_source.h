// "bin:FILE": an insightface verification set as a data source (bin_source.cpp), and
// its pair labels, for the validation passes: one read of the file serves both.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/data/source.h"

namespace coco {

struct VerificationSource {
  std::unique_ptr<DataSource> images;  // in file order; image 2i and 2i+1 are pair i
  std::vector<bool> issame;            // one per pair
};

// Errors name the file and "(data source of ORIGIN)".
VerificationSource open_verification_source(const std::string& path, const proto::DataSourceParameter& p,
                                            uint64_t seed, const std::string& origin);

}  // namespace coco
