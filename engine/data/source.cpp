#include "engine/data/source.h"

#include <cmath>

#include "engine/common.h"

namespace coco {

std::unique_ptr<DataSource> open_mnist_source(const std::string& dir, const proto::DataSourceParameter& p,
                                              uint64_t seed, const std::string& origin);
std::unique_ptr<DataSource> open_record_source(const std::string& path, const proto::DataSourceParameter& p,
                                               uint64_t seed, const std::string& origin);
std::unique_ptr<DataSource> open_list_source(const std::string& path, const proto::DataSourceParameter& p,
                                             uint64_t seed, const std::string& origin);

std::unique_ptr<DataSource> open_bin_source(const std::string& path, const proto::DataSourceParameter& p,
                                            uint64_t seed, const std::string& origin);
std::unique_ptr<DataSource> open_synthetic_source(const std::string& what, const proto::DataSourceParameter& p,
                                                  uint64_t seed, const std::string& origin);

std::unique_ptr<DataSource> open_for(const std::string& origin, const std::function<std::unique_ptr<DataSource>()>& open,
                                     const std::string& hint) {
  try {
    return open();
  } catch (const Error& e) {
    COCO_THROW(e.what(), " (data source of ", origin, hint.empty() ? "" : "; " + hint, ")");
  }
}

std::unique_ptr<DataSource> open_data_source(const proto::DataSourceParameter& p, const std::string& data_root,
                                             uint64_t seed, const std::string& origin) {
  const std::string& src = p.source();
  const auto colon = src.find(':');
  if (src.empty() || colon == std::string::npos)
    COCO_THROW(origin, ": data source '", src, "' must look like KIND:PATH (e.g. mnist:data/mnist)");
  const std::string kind = src.substr(0, colon);
  const std::string path = data_root.empty() ? src.substr(colon + 1) : data_root;
  if (p.batch_size() == 0) COCO_THROW(origin, ": data source '", src, "' has batch_size 0");
  if (kind == "mnist") return open_mnist_source(path, p, seed, origin);
  if (kind == "synthetic") return open_synthetic_source(src.substr(colon + 1), p, seed, origin);
  if (kind == "rec") return open_record_source(path, p, seed, origin);
  if (kind == "list") return open_list_source(path, p, seed, origin);
  if (kind == "bin") return open_bin_source(path, p, seed, origin);
  COCO_THROW(origin, ": unknown data source kind '", kind, "' in '", src,
             "' (known: mnist, synthetic, rec, list, bin)");
}

std::string class_id_text(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15) return std::to_string(static_cast<int64_t>(v));
  return detail::concat(v);
}

}  // namespace coco
