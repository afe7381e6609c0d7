// ImageSource and its two kinds, rec: and list:; see image_source.h.
#include "engine/data/image_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/common.h"
#include "engine/data/recordio.h"
#include "engine/proto/coco.pb.h"

namespace coco {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- ImageSource

ImageSource::ImageSource(const proto::DataSourceParameter& p, uint64_t seed)
    : seed_(seed),
      sample_order_(p.shuffle() ? SampleOrder::kShuffled : SampleOrder::kSequential),
      policy_(p.on_corrupt() == proto::DataSourceParameter::SKIP ? CorruptPolicy::kSkip : CorruptPolicy::kFail),
      threads_(static_cast<int>(p.threads())),
      depth_(static_cast<int>(std::max<uint32_t>(p.prefetch(), 1))) {
  aug_.crop = static_cast<int>(p.crop_size());
  aug_.mirror = p.mirror();
  if (p.mean_value_size() == 1) {
    aug_.mean[0] = aug_.mean[1] = aug_.mean[2] = p.mean_value(0);
  } else if (p.mean_value_size() == 3) {
    for (int c = 0; c < 3; ++c) aug_.mean[c] = p.mean_value(c);
  } else if (p.mean_value_size() != 0) {
    COCO_THROW(p.source(), ": mean_value takes 1 or 3 values, not ", p.mean_value_size());
  }
  aug_.scale = p.scale();
  aug_.order = p.color_order() == proto::DataSourceParameter::BGR ? ChannelOrder::kBgr : ChannelOrder::kRgb;
}

ImageSource::~ImageSource() = default;

void ImageSource::stop_prefetch() { prefetch_.reset(); }

void ImageSource::finish_setup(int64_t n, int height, int width, int64_t num_classes, int64_t block) {
  if (n <= 0) COCO_THROW(describe(), ": holds no images");
  n_ = n;
  height_ = height;
  width_ = width;
  num_classes_ = num_classes;
  if (aug_.crop > 0 && (aug_.crop > height || aug_.crop > width))
    COCO_THROW(describe(), ": crop_size ", aug_.crop, " is larger than the ", height, "x", width, " images");
  out_h_ = aug_.crop > 0 ? aug_.crop : height;
  out_w_ = aug_.crop > 0 ? aug_.crop : width;
  order_ = std::make_unique<BlockShuffleOrder>(n, std::max<int64_t>(block, 1), seed_, sample_order_);
  if (threads_ > 0) {
    const int64_t floats = 3ll * out_h_ * out_w_;
    prefetch_ = std::make_unique<BatchPrefetcher>(
        [this](int64_t first, int64_t count, float* data, int32_t* labels) {
          produce(order_->records(first, count), first, AugmentMode::kTrain, data, labels);
        },
        floats, threads_, std::max(depth_, threads_));
  }
}

void ImageSource::warn_once(int64_t index, const std::string& message) const {
  std::lock_guard<std::mutex> lock(warn_mu_);
  if (warned_.insert(index).second) spdlog::warn("{} (skipped: on_corrupt: SKIP)", message);
}

std::string ImageSource::convert(const EncodedSample& s, AugmentMode mode, uint64_t position, ImageU8* img,
                                 float* out) const {
  if (!s.error.empty()) return s.error;
  // A class id is an int32 (source.h), whatever count the property file claims.
  const int64_t classes = std::min<int64_t>(num_classes_, kMaxClassId + 1);
  if (!std::isfinite(s.label) || s.label < 0 || s.label >= static_cast<double>(classes) ||
      s.label != std::floor(s.label))
    return detail::concat(s.where, ": label ", class_id_text(s.label), " is not a class index in [0, ", classes, ")");
  try {
    decode_jpeg(reinterpret_cast<const uint8_t*>(s.buffer.data()) + s.body_offset, s.body_bytes, s.where, img,
                height_, width_);
  } catch (const Error& e) {
    return e.what();
  }
  if (img->height != height_ || img->width != width_)
    return s.where + ": image is " + std::to_string(img->height) + "x" + std::to_string(img->width) + ", expected " +
           std::to_string(height_) + "x" + std::to_string(width_) + " like the rest of the source";
  augment_image(*img, aug_, mode, seed_, position, out);
  return {};
}

void ImageSource::produce(const std::vector<int64_t>& indices, int64_t first_position, AugmentMode mode, float* data,
                          int32_t* labels) const {
  std::vector<EncodedSample> enc;
  read_encoded(indices, &enc);
  ImageU8 img;
  const size_t floats = 3ull * out_h_ * out_w_;
  for (size_t i = 0; i < indices.size(); ++i) {
    const uint64_t position = static_cast<uint64_t>(first_position) + i;
    float* out = data + i * floats;
    std::string err = convert(enc[i], mode, position, &img, out);
    if (err.empty()) {
      labels[i] = static_cast<int32_t>(enc[i].label);  // checked by convert: an id in [0, classes)
      continue;
    }
    if (policy_ == CorruptPolicy::kFail)
      COCO_THROW(err, " (set on_corrupt: SKIP in the data source to skip bad records)");
    // Skip: the next good sample in file order stands in; a pure function of the data.
    int64_t j = indices[i];
    for (int tries = 0; !err.empty(); ++tries) {
      warn_once(j, err);
      if (tries >= 1000 || tries >= n_) COCO_THROW(describe(), ": no readable sample near index ", indices[i]);
      j = (j + 1) % n_;
      std::vector<EncodedSample> one;
      read_encoded({j}, &one);
      err = convert(one[0], mode, position, &img, out);
      if (err.empty()) labels[i] = static_cast<int32_t>(one[0].label);
    }
  }
}

void ImageSource::fill_train(int64_t first, int64_t count, float* data, int32_t* labels) const {
  if (prefetch_) {
    prefetch_->fill(first, count, data, labels);
    return;
  }
  produce(order_->records(first, count), first, AugmentMode::kTrain, data, labels);
}

void ImageSource::fill_range(int64_t start, int64_t n, float* data, int32_t* labels) const {
  if (start < 0 || start + n > n_) COCO_THROW(describe(), ": samples [", start, ", ", start + n, ") out of range");
  std::vector<int64_t> idx(n);
  for (int64_t i = 0; i < n; ++i) idx[i] = start + i;
  produce(idx, start, AugmentMode::kTest, data, labels);
}

std::vector<EncodedSample> ImageSource::encoded(int64_t start, int64_t n) const {
  std::vector<int64_t> idx(n);
  for (int64_t i = 0; i < n; ++i) idx[i] = start + i;
  std::vector<EncodedSample> out;
  read_encoded(idx, &out);
  return out;
}

// ---------------------------------------------------------------- rec:

std::string record_prefix(const std::string& path, const std::string& split) {
  std::string p = path;
  if (fs::is_directory(p)) return (fs::path(p) / (split.empty() ? "train" : split)).string();
  if (p.size() > 4 && p.compare(p.size() - 4, 4, ".rec") == 0) p.resize(p.size() - 4);
  return p;
}

namespace {

class RecordSource final : public ImageSource {
 public:
  RecordSource(const std::string& path, const proto::DataSourceParameter& p, uint64_t seed)
      : ImageSource(p, seed), prefix_(record_prefix(path, p.split())), rec_(prefix_ + ".rec") {
    // (the workers must stop before this class's members go: see ~RecordSource)
    const std::string idx_path = prefix_ + ".idx";
    const auto index = read_record_index(idx_path);
    for (size_t i = 0; i < index.size(); ++i)
      if (index[i].second >= rec_.size())
        COCO_THROW(idx_path, ":", i + 1, ": offset ", index[i].second, " of key ", index[i].first,
                   " is past the end of ", rec_.path(), " (", rec_.size(), " bytes): the file is truncated");
    const ImageRecords images = image_records(index, idx_path);
    set_extents(index, images.records);
    if (begin_.empty())
      COCO_THROW(rec_.path(), ": holds no image records (", idx_path, " lists ", index.size(), " keys",
                 images.insightface ? ", none of them an image key of the identity-range header" : "", ")");
    const RecordProperty prop = read_property(images.header_classes);
    finish_setup(static_cast<int64_t>(begin_.size()), static_cast<int>(prop.height), static_cast<int>(prop.width),
                 prop.num_classes, std::max<uint32_t>(p.shuffle_block(), 1));
    // A truncated file usually loses its last record: check it now, not hours in.
    std::vector<EncodedSample> last;
    read_encoded({size() - 1}, &last);
    if (!last[0].error.empty()) {
      if (policy() == CorruptPolicy::kFail) COCO_THROW(last[0].error, " (set on_corrupt: SKIP to skip bad records)");
      warn_once(size() - 1, last[0].error);
    }
  }

  ~RecordSource() override { stop_prefetch(); }

  std::string describe() const override {
    return "rec:" + prefix_ + " (" + std::to_string(begin_.size()) + " images, " + std::to_string(num_classes()) +
           " classes)";
  }

 protected:
  // Sorts the wanted samples by file offset and reads each run of them that lies
  // in one shuffle block (or is consecutive, up to 8 MiB) with one pread.
  void read_encoded(const std::vector<int64_t>& indices, std::vector<EncodedSample>* out) const override {
    out->assign(indices.size(), EncodedSample{});
    std::vector<size_t> ord(indices.size());
    for (size_t i = 0; i < ord.size(); ++i) ord[i] = i;
    std::sort(ord.begin(), ord.end(), [&](size_t a, size_t b) { return indices[a] < indices[b]; });
    const int64_t block = order_ready() ? order().block() : 1;
    constexpr uint64_t kMaxRun = 8ull << 20;
    size_t i = 0;
    while (i < ord.size()) {
      size_t j = i + 1;
      const int64_t lo = indices[ord[i]];
      while (j < ord.size()) {
        const int64_t cur = indices[ord[j]], prev = indices[ord[j - 1]];
        const bool same_block = cur / block == lo / block;
        const bool adjacent = cur - prev <= 1 && end_[cur] - begin_[lo] <= kMaxRun;
        if (!same_block && !adjacent) break;
        ++j;
      }
      const int64_t hi = indices[ord[j - 1]];
      const uint64_t chunk_off = begin_[lo];
      std::vector<uint8_t> chunk;
      std::string chunk_error;
      try {
        chunk = rec_.read_bytes(chunk_off, static_cast<size_t>(end_[hi] - chunk_off));
      } catch (const Error& e) {
        chunk_error = e.what();
      }
      for (size_t k = i; k < j; ++k) {
        const int64_t s = indices[ord[k]];
        EncodedSample& e = (*out)[ord[k]];
        e.where = rec_.path() + ": record at byte " + std::to_string(begin_[s]);
        if (!chunk_error.empty()) {
          e.error = chunk_error;
          continue;
        }
        try {
          e.buffer = rec_.record_in_chunk(chunk, chunk_off, begin_[s]);
          const PayloadView v =
              parse_payload(reinterpret_cast<const uint8_t*>(e.buffer.data()), e.buffer.size(), e.where);
          e.body_offset = static_cast<size_t>(v.body - reinterpret_cast<const uint8_t*>(e.buffer.data()));
          e.body_bytes = v.body_bytes;
          e.label = v.header.class_id();
        } catch (const Error& err) {
          e.error = err.what();
        }
      }
      i = j;
    }
  }

 private:
  using Index = std::vector<std::pair<uint64_t, uint64_t>>;  // (key, offset)
  struct ImageRecords {
    Index records;               // the image records, in index order
    int64_t header_classes = 0;  // the identity count of insightface's header (0: none)
    bool insightface = false;    // record 0 is that header
  };

  // Insightface: record 0 is a header (flag 2, labels [id_start, id_end), no image)
  // and the images are keys 1..id_start-1. Otherwise every record is an image.
  ImageRecords image_records(const Index& index, const std::string& idx_path) const {
    ImageRecords out;
    const auto zero = std::find_if(index.begin(), index.end(), [](const auto& e) { return e.first == 0; });
    if (zero != index.end()) {
      const std::string where = rec_.path() + ": record 0 at byte " + std::to_string(zero->second);
      const std::string payload = rec_.read_record(zero->second);
      const PayloadView v = parse_payload(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), where);
      if (v.header.flag == 2 && v.body_bytes == 0) {
        out.insightface = true;
        const double id_start = v.header.labels[0], id_end = v.header.labels[1];
        // Bounded before the casts below (a float label may hold anything): the image
        // keys 1..id_start-1 must be in the index, the class count must fit an int.
        if (!(id_start >= 1 && id_start <= static_cast<double>(index.size()) + 1 && id_end >= id_start &&
              id_end - id_start <= 2147483647.0))
          COCO_THROW(where, ": identity-range header [", id_start, ", ", id_end, ") is not a valid key range");
        out.header_classes = static_cast<int64_t>(id_end - id_start);
        for (const auto& e : index)
          if (e.first >= 1 && e.first < static_cast<uint64_t>(id_start)) out.records.push_back(e);
        if (static_cast<double>(out.records.size()) != id_start - 1)
          COCO_THROW(where, ": the header says image keys 1..", id_start - 1, " but ", idx_path, " lists ",
                     out.records.size(), " of them");
      }
    }
    if (!out.insightface) out.records = index;
    return out;
  }

  // begin_/end_: the images' extents in file order; each ends where the next record
  // (of any kind, in file order) begins.
  void set_extents(const Index& index, Index images) {
    std::vector<uint64_t> all_offsets;
    for (const auto& e : index) all_offsets.push_back(e.second);
    std::sort(all_offsets.begin(), all_offsets.end());
    std::sort(images.begin(), images.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    for (const auto& e : images) {
      begin_.push_back(e.second);
      const auto next = std::upper_bound(all_offsets.begin(), all_offsets.end(), e.second);
      end_.push_back(next == all_offsets.end() ? rec_.size() : *next);
    }
  }

  // This split's own PREFIX.property (coco-pack writes one per split), else
  // insightface's shared `property` beside it; without either, the header's identity
  // count and the first image's size.
  RecordProperty read_property(int64_t header_classes) {
    std::string prop_path = prefix_ + ".property";
    if (!fs::exists(prop_path)) prop_path = (fs::path(prefix_).parent_path() / "property").string();
    if (fs::exists(prop_path)) return read_record_property(prop_path);
    if (header_classes <= 0)
      COCO_THROW(prop_path, ": missing; a .rec without insightface's identity header needs a property file "
                            "'num_classes,height,width'");
    std::vector<EncodedSample> first;
    read_encoded({0}, &first);
    if (!first[0].error.empty()) COCO_THROW(first[0].error);
    int h = 0, w = 0;
    jpeg_dimensions(reinterpret_cast<const uint8_t*>(first[0].buffer.data()) + first[0].body_offset,
                    first[0].body_bytes, first[0].where, &h, &w);
    return {header_classes, h, w};
  }

  bool order_ready() const { return size() > 0; }
  std::string prefix_;
  RecordFile rec_;
  std::vector<uint64_t> begin_, end_;  // byte extent of each image record, file order
};

// ---------------------------------------------------------------- list:

class ListSource final : public ImageSource {
 public:
  ListSource(const std::string& path, const proto::DataSourceParameter& p, uint64_t seed)
      : ImageSource(p, seed), path_(path) {
    std::ifstream f(path);
    if (!f) COCO_THROW(path, ": cannot open the image list");
    const fs::path base = fs::path(path).parent_path();
    std::string line;
    int64_t lineno = 0, max_label = -1;
    while (std::getline(f, line)) {
      ++lineno;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto first_char = line.find_first_not_of(" \t");
      if (first_char == std::string::npos || line[first_char] == '#') continue;
      // The label is the last field, so paths may contain spaces (as Caffe's ImageData).
      const auto end = line.find_last_not_of(" \t");
      const auto sep = line.find_last_of(" \t", end);
      long long label = -1;
      std::string rest;
      if (sep == std::string::npos || sep < first_char) COCO_THROW(path, ":", lineno, ": expected 'path label', found '", line, "'");
      std::istringstream ls(line.substr(sep + 1, end - sep));
      if (!(ls >> label) || label < 0 || label > kMaxClassId || (ls >> rest))
        COCO_THROW(path, ":", lineno, ": the label '", line.substr(sep + 1, end - sep),
                   "' is not an integer in [0, ", kMaxClassId, "]");
      std::string file = line.substr(first_char, line.find_last_not_of(" \t", sep) - first_char + 1);
      fs::path fp(file);
      if (fp.is_relative()) fp = base / fp;
      files_.push_back(fp.string());
      labels_.push_back(static_cast<int32_t>(label));
      lines_.push_back(lineno);
      max_label = std::max<int64_t>(max_label, label);
    }
    if (files_.empty()) COCO_THROW(path, ": the image list names no images");
    std::vector<EncodedSample> first;
    read_encoded({0}, &first);
    if (!first[0].error.empty()) COCO_THROW(first[0].error);
    int h = 0, w = 0;
    jpeg_dimensions(reinterpret_cast<const uint8_t*>(first[0].buffer.data()), first[0].body_bytes, first[0].where, &h, &w);
    finish_setup(static_cast<int64_t>(files_.size()), h, w, max_label + 1, 1);
  }

  ~ListSource() override { stop_prefetch(); }

  std::string describe() const override {
    return "list:" + path_ + " (" + std::to_string(files_.size()) + " images, " + std::to_string(num_classes()) +
           " classes)";
  }

 protected:
  void read_encoded(const std::vector<int64_t>& indices, std::vector<EncodedSample>* out) const override {
    out->assign(indices.size(), EncodedSample{});
    for (size_t i = 0; i < indices.size(); ++i) {
      const int64_t s = indices[i];
      EncodedSample& e = (*out)[i];
      e.where = path_ + ":" + std::to_string(lines_[s]) + " (" + files_[s] + ")";
      e.label = labels_[s];
      std::ifstream f(files_[s], std::ios::binary);
      if (!f) {
        e.error = e.where + ": cannot open the image";
        continue;
      }
      e.buffer.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
      e.body_offset = 0;
      e.body_bytes = e.buffer.size();
    }
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
  std::vector<int32_t> labels_;
  std::vector<int64_t> lines_;
};

}  // namespace

std::unique_ptr<DataSource> open_record_source(const std::string& path, const proto::DataSourceParameter& p,
                                               uint64_t seed, const std::string& origin) {
  return open_for(origin, [&] { return std::make_unique<RecordSource>(path, p, seed); });
}

std::unique_ptr<DataSource> open_list_source(const std::string& path, const proto::DataSourceParameter& p,
                                             uint64_t seed, const std::string& origin) {
  return open_for(origin, [&] { return std::make_unique<ListSource>(path, p, seed); });
}

}  // namespace coco
