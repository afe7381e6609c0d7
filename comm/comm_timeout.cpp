#include "comm/comm_timeout.h"

#include <atomic>
#include <cstdlib>

#include "engine/common.h"

namespace coco {
namespace {

double from_environment() {
  const char* v = std::getenv("COCO_COMM_TIMEOUT");
  if (!v || !*v) return kDefaultCommTimeoutSeconds;
  char* end = nullptr;
  const double t = std::strtod(v, &end);
  if (end == v || *end != '\0' || !(t >= 0))
    COCO_THROW("COCO_COMM_TIMEOUT='", v, "': expected seconds >= 0 (0: no bound)");
  return t;
}

std::atomic<double>& setting() {
  static std::atomic<double> seconds{from_environment()};
  return seconds;
}

}  // namespace

double comm_timeout_s() { return setting().load(); }

void set_comm_timeout_s(double seconds) {
  COCO_CHECK(seconds >= 0, "the collective timeout must be >= 0 seconds (0: no bound), got ", seconds);
  setting().store(seconds);
}

}  // namespace coco
