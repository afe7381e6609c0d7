#include "engine/metrics_writer.h"

#include <cerrno>
#include <cstring>

#include "engine/common.h"

namespace coco {

MetricsWriter::MetricsWriter(const std::string& path) : path_(path) {
  if (path_.empty()) return;
  out_.open(path_, std::ios::app);
  if (!out_) COCO_THROW(path_, ": cannot open the metrics file for writing");
}

void MetricsWriter::write(const nlohmann::json& record) {
  if (!out_.is_open()) return;
  out_ << record.dump() << "\n";
  out_.flush();
  if (!out_) COCO_THROW(path_, ": cannot write the metrics file: ", std::strerror(errno));
}

}  // namespace coco
