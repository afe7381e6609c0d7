// coco-pack's library part; see pack.h.
#include "engine/data/pack.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/aside_files.h"
#include "engine/common.h"
#include "engine/data/jpeg.h"
#include "engine/data/recordio.h"
#include "engine/data/source.h"

namespace coco {

namespace fs = std::filesystem;

namespace {

std::string slurp(const std::string& path, const std::string& where) {
  std::ifstream f(path, std::ios::binary);
  if (!f) COCO_THROW(where, ": cannot open ", path);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

bool is_image_name(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e == ".jpg" || e == ".jpeg";
}

// Record headers hold the identity records' key ranges as float32 (insightface's
// layout), exact only below 2^24. Image labels are exact at any int32 id: each
// record also carries its id in id2 (RecordHeader::set_class_id).
constexpr int64_t kFloatExactIds = int64_t{1} << 24;

// Stable by label; the order every writer and checker here uses.
std::vector<PackItem> by_label(std::vector<PackItem> items) {
  std::stable_sort(items.begin(), items.end(), [](const PackItem& a, const PackItem& b) { return a.label < b.label; });
  return items;
}

// insightface's `property` beside the package describes train.rec. Each split also
// gets PREFIX.property of its own, which the rec: reader prefers, so packing a second
// split into the same folder never changes the first one's metadata.
std::string shared_property_path(const std::string& prefix) {
  return (fs::path(prefix).parent_path() / "property").string();
}

bool writes_shared_property(const std::string& prefix) {
  return fs::path(prefix).filename() == "train" || !fs::exists(shared_property_path(prefix));
}

}  // namespace

std::vector<PackItem> pack_items_from_folder(const std::string& dir) {
  if (!fs::is_directory(dir)) COCO_THROW(dir, ": not a folder");
  std::vector<fs::path> ids;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) ids.push_back(e.path());
  std::sort(ids.begin(), ids.end());
  std::vector<PackItem> items;
  for (size_t k = 0; k < ids.size(); ++k) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(ids[k]))
      if (e.is_regular_file() && is_image_name(e.path())) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    if (files.empty()) COCO_THROW(ids[k].string(), ": identity folder holds no .jpg/.jpeg images");
    for (const auto& f : files) items.push_back({f.string(), static_cast<int64_t>(k), f.string()});
  }
  if (items.empty()) COCO_THROW(dir, ": no identity sub-folders (expected DIR/<identity>/<image>.jpg)");
  if (static_cast<int64_t>(ids.size()) > kMaxClassId + 1)
    COCO_THROW(dir, ": ", ids.size(), " identity folders; class ids are int32, at most ", kMaxClassId + 1,
               " identities");
  return items;
}

std::vector<PackItem> pack_items_from_list(const std::string& list) {
  std::ifstream f(list);
  if (!f) COCO_THROW(list, ": cannot open the list file");
  const fs::path base = fs::path(list).parent_path();
  std::vector<PackItem> items;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto b = line.find_first_not_of(" \t");
    if (b == std::string::npos || line[b] == '#') continue;
    const auto e = line.find_last_not_of(" \t");
    const auto sep = line.find_last_of(" \t", e);
    const std::string where = list + ":" + std::to_string(lineno);
    if (sep == std::string::npos || sep < b) COCO_THROW(where, ": expected 'path label', found '", line, "'");
    std::istringstream ls(line.substr(sep + 1, e - sep));
    long long label = -1;
    std::string rest;
    if (!(ls >> label) || label < 0 || (ls >> rest))
      COCO_THROW(where, ": the label '", line.substr(sep + 1, e - sep), "' is not a non-negative integer");
    if (label > kMaxClassId)
      COCO_THROW(where, ": the label ", label, " is past ", kMaxClassId, ", the largest class id (class ids are int32)");
    fs::path p(line.substr(b, line.find_last_not_of(" \t", sep) - b + 1));
    if (p.is_relative()) p = base / p;
    items.push_back({p.string(), label, where});
  }
  if (items.empty()) COCO_THROW(list, ": the list names no images");
  return items;
}

PackResult pack_records(std::vector<PackItem> items, const std::string& prefix, PackLayout layout) {
  items = by_label(std::move(items));
  PackResult r;
  r.images = static_cast<int64_t>(items.size());
  r.classes = items.back().label + 1;
  if (!fs::path(prefix).parent_path().empty()) fs::create_directories(fs::path(prefix).parent_path());
  AsideFiles out;  // a pack that fails leaves an earlier package as it was
  RecordWriter w(out.aside(prefix + ".rec"));
  std::vector<std::pair<uint64_t, uint64_t>> index;
  const uint64_t n = items.size(), k = static_cast<uint64_t>(r.classes);
  if (layout == PackLayout::kInsightface && n + 1 + k > static_cast<uint64_t>(kFloatExactIds))
    COCO_THROW(prefix, ": ", n, " images and ", k, " identities: insightface's identity records hold record keys "
               "up to images + identities + 1 as float32, exact only to 16777216; pack with --plain (no identity "
               "records) or in parts");
  if (layout == PackLayout::kInsightface) {
    RecordHeader h;
    h.labels = {static_cast<float>(n + 1), static_cast<float>(n + 1 + k)};
    const std::string p = pack_payload(h, nullptr, 0);
    index.emplace_back(0, w.write(p.data(), p.size()));
  }
  std::vector<uint64_t> first_key(k, 0), end_key(k, 0);
  for (uint64_t i = 0; i < n; ++i) {
    const PackItem& it = items[i];
    const std::string jpeg = slurp(it.path, it.where);
    int h = 0, wd = 0;
    jpeg_dimensions(reinterpret_cast<const uint8_t*>(jpeg.data()), jpeg.size(), it.where + " (" + it.path + ")", &h, &wd);
    if (i == 0) {
      r.height = h;
      r.width = wd;
    } else if (h != r.height || wd != r.width) {
      COCO_THROW(it.where, " (", it.path, "): image is ", h, "x", wd, " but the first one is ", r.height, "x", r.width,
                 "; a package holds images of one size (align or resize them first)");
    }
    const uint64_t key = layout == PackLayout::kInsightface ? i + 1 : i;
    RecordHeader hd;
    hd.set_class_id(it.label);  // float label for insightface's readers, the exact id in id2
    hd.id = key;
    const std::string p = pack_payload(hd, jpeg.data(), jpeg.size());
    index.emplace_back(key, w.write(p.data(), p.size()));
    const auto lab = static_cast<uint64_t>(it.label);
    if (end_key[lab] == 0) first_key[lab] = key;
    end_key[lab] = key + 1;
  }
  if (layout == PackLayout::kInsightface) {
    for (uint64_t c = 0; c < k; ++c) {
      // Labels with no image (a gap in a list file) get an empty range.
      RecordHeader h;
      h.labels = {static_cast<float>(first_key[c]), static_cast<float>(end_key[c])};
      h.id = n + 1 + c;
      const std::string p = pack_payload(h, nullptr, 0);
      index.emplace_back(n + 1 + c, w.write(p.data(), p.size()));
    }
  }
  r.splits = w.splits();
  r.bytes = w.offset();
  w.close();
  write_record_index(out.aside(prefix + ".idx"), index);
  const RecordProperty prop{r.classes, r.height, r.width};
  write_record_property(out.aside(prefix + ".property"), prop);
  if (writes_shared_property(prefix)) write_record_property(out.aside(shared_property_path(prefix)), prop);
  out.commit();
  return r;
}

void verify_pack(const std::vector<PackItem>& unsorted, const std::string& prefix, PackLayout layout) {
  const std::vector<PackItem> items = by_label(unsorted);
  RecordFile rec(prefix + ".rec");
  const auto index = read_record_index(prefix + ".idx");
  const auto records = rec.read_all();
  const size_t k = static_cast<size_t>(items.back().label + 1);
  const size_t want = items.size() + (layout == PackLayout::kInsightface ? 1 + k : 0);
  if (records.size() != want || index.size() != want)
    COCO_THROW(prefix, ": read back ", records.size(), " records and ", index.size(), " index lines, expected ", want);
  const size_t skip = layout == PackLayout::kInsightface ? 1 : 0;
  for (size_t i = 0; i < records.size(); ++i)
    if (index[i].second != records[i].first)
      COCO_THROW(prefix, ".idx:", i + 1, ": offset ", index[i].second, " but the record is at byte ", records[i].first);
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& [off, payload] = records[i + skip];
    const std::string where = rec.path() + ": record at byte " + std::to_string(off);
    const PayloadView v = parse_payload(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), where);
    const std::string jpeg = slurp(items[i].path, items[i].where);
    if (v.header.class_id() != static_cast<double>(items[i].label))
      COCO_THROW(where, ": label ", class_id_text(v.header.class_id()), " but ", items[i].where, " says ", items[i].label);
    if (v.body_bytes != jpeg.size() || std::memcmp(v.body, jpeg.data(), jpeg.size()) != 0)
      COCO_THROW(where, ": bytes differ from ", items[i].path);
  }
}

}  // namespace coco
