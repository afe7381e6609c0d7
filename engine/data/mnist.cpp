#include "engine/data/mnist.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/common.h"
#include "engine/rng.h"

namespace coco {

namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // unsigned byte, 1 dimension

std::string dims_str(const std::vector<uint32_t>& d) {
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) s += (i ? " x " : "") + std::to_string(d[i]);
  return s;
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// One IDX file read whole; dims are the header's sizes.
struct IdxFile {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;
};

uint32_t big_endian32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

IdxFile read_idx(const std::string& path, uint32_t magic, int num_dims, const char* what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    COCO_THROW("MNIST ", what, " file '", path, "' does not exist or is not a file ",
               "(fetch the data with tools/fetch_mnist.sh)");
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) COCO_THROW("MNIST ", what, " file '", path, "': cannot read its size: ", ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) COCO_THROW("MNIST ", what, " file '", path, "': cannot open");
  const uint64_t header = 4 + 4 * static_cast<uint64_t>(num_dims);
  if (file_size < header)
    COCO_THROW("MNIST ", what, " file '", path, "' is truncated: expected a header of ", header,
               " bytes, found a file of ", file_size, " bytes");
  std::vector<uint8_t> head(header);
  in.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(header));
  if (!in) COCO_THROW("MNIST ", what, " file '", path, "': read error in the header");
  const uint32_t found = big_endian32(head.data());
  if (found != magic)
    COCO_THROW("MNIST ", what, " file '", path, "': bad magic number: expected ", hex32(magic),
               " (unsigned bytes, ", num_dims, " dimension", num_dims > 1 ? "s" : "", "), found ", hex32(found));
  IdxFile f;
  unsigned __int128 product = 1;  // three 32-bit sizes: up to 2^96, so no wrap-around
  for (int k = 0; k < num_dims; ++k) {
    f.dims.push_back(big_endian32(head.data() + 4 + 4 * k));
    product *= f.dims.back();
  }
  if (product > (uint64_t{1} << 48))
    COCO_THROW("MNIST ", what, " file '", path, "' is truncated: its header states ", dims_str(f.dims),
               " bytes of data, found a file of ", file_size, " bytes");
  const uint64_t payload = static_cast<uint64_t>(product);
  if (file_size != header + payload)
    COCO_THROW("MNIST ", what, " file '", path, "' is ", file_size < header + payload ? "truncated" : "oversized",
               ": its header states ", payload, " bytes of data, so expected a file of ", header + payload,
               " bytes, found ", file_size, " bytes");
  f.data.resize(payload);
  in.read(reinterpret_cast<char*>(f.data.data()), static_cast<std::streamsize>(payload));
  if (!in) COCO_THROW("MNIST ", what, " file '", path, "': read error in the data");
  return f;
}

}  // namespace

MnistSplit parse_mnist_split(const std::string& s) {
  if (s == "train") return MnistSplit::kTrain;
  if (s == "test") return MnistSplit::kTest;
  COCO_THROW("MNIST split '", s, "' is not one of: train, test");
}

void MnistDataset::load(const std::string& dir, MnistSplit split) {
  const std::string prefix = split == MnistSplit::kTrain ? "train" : "t10k";
  const std::filesystem::path d(dir);
  load_files((d / (prefix + "-images-idx3-ubyte")).string(), (d / (prefix + "-labels-idx1-ubyte")).string());
}

void MnistDataset::load_files(const std::string& images_path, const std::string& labels_path) {
  IdxFile img = read_idx(images_path, kImagesMagic, 3, "images");
  IdxFile lab = read_idx(labels_path, kLabelsMagic, 1, "labels");
  if (img.dims[0] == 0) COCO_THROW("MNIST images file '", images_path, "' holds no images");
  if (img.dims[1] == 0 || img.dims[2] == 0)
    COCO_THROW("MNIST images file '", images_path, "': image size ", img.dims[1], "x", img.dims[2],
               " is empty");
  if (img.dims[0] != lab.dims[0])
    COCO_THROW("MNIST files disagree: images file '", images_path, "' holds ", img.dims[0],
               " images but labels file '", labels_path, "' holds ", lab.dims[0], " labels");
  for (size_t i = 0; i < lab.data.size(); ++i)
    if (lab.data[i] >= kNumClasses)
      COCO_THROW("MNIST labels file '", labels_path, "': label ", int(lab.data[i]), " at index ", i,
                 " is outside 0..", kNumClasses - 1);
  count_ = img.dims[0];
  rows_ = img.dims[1];
  cols_ = img.dims[2];
  pixels_ = std::move(img.data);
  labels_ = std::move(lab.data);
}

void MnistDataset::check_index(int64_t i) const {
  COCO_CHECK(i >= 0 && i < count_, "MNIST sample ", i, " out of range [0, ", count_, ")");
}

const uint8_t* MnistDataset::raw_image(int64_t i) const {
  check_index(i);
  return pixels_.data() + i * image_size();
}

void MnistDataset::copy_image(int64_t i, float* out) const {
  const uint8_t* p = raw_image(i);
  const int64_t n = image_size();
  for (int64_t k = 0; k < n; ++k) out[k] = (static_cast<float>(p[k]) - 127.5f) / 255.0f;
}

int MnistDataset::label(int64_t i) const {
  check_index(i);
  return labels_[i];
}

BatchSampler::BatchSampler(int64_t size, uint64_t seed, SampleOrder order)
    : size_(size), seed_(seed), order_(order) {
  if (size < 1) COCO_THROW("batch sampler: the data set is empty");
}

std::vector<int64_t> BatchSampler::epoch_order(int64_t epoch) const {
  COCO_CHECK(epoch >= 0, "negative epoch ", epoch);
  std::vector<int64_t> order(static_cast<size_t>(size_));
  for (int64_t i = 0; i < size_; ++i) order[i] = i;
  if (order_ == SampleOrder::kShuffled) {
    // Fisher-Yates. mt19937_64's output is fixed by the standard; the index is
    // drawn by a 128-bit multiply (not uniform_int_distribution, whose algorithm
    // differs between standard libraries), so the order is the same everywhere.
    std::mt19937_64 g(hash3(seed_, static_cast<uint64_t>(epoch), 0x4d4e495354ull /* "MNIST" */));
    for (int64_t i = size_ - 1; i > 0; --i) {
      const auto j = static_cast<int64_t>((static_cast<unsigned __int128>(g()) * static_cast<uint64_t>(i + 1)) >> 64);
      std::swap(order[i], order[j]);
    }
  }
  return order;
}

int64_t BatchSampler::sample(int64_t epoch, int64_t position) const {
  COCO_CHECK(position >= 0 && position < size_, "position ", position, " out of range [0, ", size_, ")");
  COCO_CHECK(epoch >= 0, "negative epoch ", epoch);
  if (order_ == SampleOrder::kSequential) return position;
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& c : cache_)
    if (c.epoch == epoch) return c.order[static_cast<size_t>(position)];
  Cached& c = cache_[next_slot_];
  next_slot_ ^= 1;
  c.order = epoch_order(epoch);
  c.epoch = epoch;
  return c.order[static_cast<size_t>(position)];
}

void MnistBatches::fill_batch(int64_t iteration, int64_t batch_size, float* images, int32_t* labels) const {
  COCO_CHECK(iteration >= 0 && batch_size >= 1, "iteration ", iteration, ", batch size ", batch_size);
  fill_range(iteration * batch_size, batch_size, images, labels);
}

void MnistBatches::fill_range(int64_t first_position, int64_t count, float* images, int32_t* labels) const {
  COCO_CHECK(first_position >= 0 && count >= 0, "first position ", first_position, ", count ", count);
  const int64_t pixels = data_->image_size();
  for (int64_t b = 0; b < count; ++b) {
    const int64_t s = sampler_.sample_at(first_position + b);
    data_->copy_image(s, images + b * pixels);  // (B, 1, rows, cols)
    labels[b] = data_->label(s);
  }
}

}  // namespace coco
