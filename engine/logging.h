// Logging: spdlog, one line per event, prefixed with the rank ("[rank r/N]").
#pragma once

#include <spdlog/spdlog.h>

namespace coco {

void init_logging(int rank, int size);

}  // namespace coco
