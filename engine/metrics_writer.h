// The --metrics file: one JSON object per line, appended, flushed as it is written so
// a run that dies leaves every line it reached. In a job of several ranks rank 0
// alone writes it.
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace coco {

class MetricsWriter {
 public:
  // Opens `path` for appending (throws if it cannot); "" writes nothing.
  explicit MetricsWriter(const std::string& path);
  // Writes one line; throws naming the file if the write fails (a full disk).
  void write(const nlohmann::json& record);

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace coco
