// A set of files that appear together or not at all: each is written under a
// temporary name beside its final one and renamed into place by commit(); if commit()
// is never reached (an error on the way), the destructor removes the temporary files,
// so an earlier set under the final names is left as it was. coco-pack's package and
// coco-export's output folder are written this way.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace coco {

class AsideFiles {
 public:
  AsideFiles() = default;
  AsideFiles(const AsideFiles&) = delete;
  AsideFiles& operator=(const AsideFiles&) = delete;
  ~AsideFiles();

  // The temporary name to write `final_path` under (FINAL.coco-partial-PID).
  std::string aside(const std::string& final_path);
  // Renames every file written aside to its final name; throws naming the first that fails.
  void commit();

 private:
  std::vector<std::pair<std::string, std::string>> files_;  // (temporary, final)
};

}  // namespace coco
