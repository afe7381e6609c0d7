#include "engine/aside_files.h"

#include <unistd.h>

#include <filesystem>

#include "engine/common.h"

namespace coco {

std::string AsideFiles::aside(const std::string& final_path) {
  files_.emplace_back(final_path + ".coco-partial-" + std::to_string(::getpid()), final_path);
  return files_.back().first;
}

void AsideFiles::commit() {
  for (const auto& [tmp, final_path] : files_) {
    std::error_code ec;
    std::filesystem::rename(tmp, final_path, ec);
    if (ec) COCO_THROW(final_path, ": cannot move the written file into place: ", ec.message());
  }
  files_.clear();
}

AsideFiles::~AsideFiles() {
  for (const auto& f : files_) {
    std::error_code ec;
    std::filesystem::remove(f.first, ec);
  }
}

}  // namespace coco
