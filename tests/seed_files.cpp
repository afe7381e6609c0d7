#include "tests/seed_files.h"

#include <cstdlib>
#include <filesystem>

namespace coco::testing {

const char* const kSeedSkipLine =
    "needs the seed's files: set COCO_SEED_DIR to a checkout of sciencefans/coco_loss (README: The seed's files)";

namespace {

// Files every seed test reads; their absence means the setting points elsewhere.
const char* const kMarkers[] = {"model/net_test.prototxt", "model/coco_loss/10epoches.caffemodel",
                                "materials_for_face/ir235_release.prototxt"};

std::string configured_dir() {
  if (const char* env = std::getenv("COCO_SEED_DIR")) return env;
  return COCO_SEED_DIR_CONFIGURED;
}

}  // namespace

SeedFiles find_seed_files() {
  SeedFiles found;
  const std::string dir = configured_dir();
  if (dir.empty()) return found;
  for (const char* marker : kMarkers) {
    if (!std::filesystem::is_regular_file(std::filesystem::path(dir) / marker)) {
      found.problem = "COCO_SEED_DIR is set to '" + dir + "', which has no " + marker +
                      ": point it at a checkout of sciencefans/coco_loss, or unset it to skip these tests";
      return found;
    }
  }
  found.dir = dir;
  return found;
}

}  // namespace coco::testing
