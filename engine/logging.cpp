#include "engine/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <string>

namespace coco {

void init_logging(int rank, int size) {
  const std::string name = "coco-" + std::to_string(rank);
  auto logger = spdlog::get(name);
  if (!logger) logger = spdlog::stderr_color_mt(name);
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e [rank " + std::to_string(rank) + "/" + std::to_string(size) +
                      "] %^%l%$ %v");
  spdlog::set_default_logger(logger);
}

}  // namespace coco
