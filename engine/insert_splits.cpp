#include "engine/insert_splits.h"

#include <map>
#include <set>
#include <utility>
#include <vector>

#include "engine/common.h"

namespace coco {

namespace {

// One version of a blob: the layer and top that wrote it, and who reads it. A blob
// written again (in place) starts a new version with readers of its own.
struct BlobVersion {
  int producer, top;
  std::string name;
  std::vector<std::pair<int, int>> consumers;  // (layer, bottom index)
};

std::vector<BlobVersion> blob_versions(const proto::NetParameter& p, const std::string& origin) {
  std::vector<BlobVersion> versions;
  std::map<std::string, int> current;
  std::set<std::string> names;
  for (int li = 0; li < p.layer_size(); ++li) {
    const auto& l = p.layer(li);
    if (l.name().empty()) COCO_THROW(origin, ": layer #", li + 1, " (", l.type(), ") has no name");
    if (!names.insert(l.name()).second) COCO_THROW(origin, ": two layers are named '", l.name(), "'");
    for (int b = 0; b < l.bottom_size(); ++b) {
      auto it = current.find(l.bottom(b));
      if (it == current.end())
        COCO_THROW(origin, ": layer '", l.name(), "' (", l.type(), "): bottom '", l.bottom(b),
                   "' is not produced by any earlier layer or input");
      versions[it->second].consumers.push_back({li, b});
    }
    for (int t = 0; t < l.top_size(); ++t) {
      versions.push_back({li, t, l.top(t), {}});
      current[l.top(t)] = static_cast<int>(versions.size()) - 1;
    }
  }
  return versions;
}

// The Split for a version read by several layers; rewires those readers in `p`.
proto::LayerParameter split_for(const BlobVersion& v, proto::NetParameter* p, const std::string& origin) {
  const std::string base = v.name + "_" + p->layer(v.producer).name() + "_" + std::to_string(v.top) + "_split";
  proto::LayerParameter split;
  split.set_name(base);
  split.set_type("Split");
  split.add_bottom(v.name);
  for (size_t k = 0; k < v.consumers.size(); ++k) {
    auto [li, b] = v.consumers[k];
    auto* consumer = p->mutable_layer(li);
    for (const auto& t : consumer->top())
      if (t == v.name)
        COCO_THROW(origin, ": layer '", consumer->name(), "' works in place on '", v.name,
                   "', which other layers also read; give it its own top");
    const std::string top = base + "_" + std::to_string(k);
    split.add_top(top);
    consumer->set_bottom(b, top);
  }
  return split;
}

}  // namespace

proto::NetParameter insert_splits(const proto::NetParameter& net, const std::string& origin) {
  proto::NetParameter p = net;
  std::map<int, std::vector<proto::LayerParameter>> splits_after;
  for (const auto& v : blob_versions(p, origin))
    if (v.consumers.size() >= 2) splits_after[v.producer].push_back(split_for(v, &p, origin));
  proto::NetParameter out;
  out.set_name(p.name());
  out.set_force_backward(p.force_backward());
  for (int li = 0; li < p.layer_size(); ++li) {
    *out.add_layer() = p.layer(li);
    for (auto& s : splits_after[li]) *out.add_layer() = s;
  }
  return out;
}

}  // namespace coco
