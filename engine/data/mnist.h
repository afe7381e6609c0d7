// MNIST: a validating reader of the four IDX files, and a stateless batch order.
//
// Why it looks like this: a data file is input, so every way it can be wrong (magic
// number, dimension count, size, label range, image/label count mismatch) is one
// clear coco::Error naming the file, what was expected and what was found. Images
// stay as the file's bytes (47 MB for the training set, not 188 MB of floats) and
// are scaled to floats as (v - 127.5) / 255 (the seed's) when a batch is filled.
//
// The batch order is a pure function: position p of epoch e is
// order(seed, e)[p], a Fisher-Yates permutation drawn from std::mt19937_64 seeded
// with mix(seed, e). Iteration i of batch size B reads positions [i*B, (i+1)*B) of
// the concatenated epochs, wrapping from one epoch into the next, so a run resumed
// at any iteration reads exactly what it would have read, with no saved state.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace coco {

enum class MnistSplit { kTrain, kTest };
MnistSplit parse_mnist_split(const std::string& s);  // "train" | "test"

class MnistDataset {
 public:
  // Reads <dir>/train-{images-idx3,labels-idx1}-ubyte or <dir>/t10k-... .
  void load(const std::string& dir, MnistSplit split);
  void load(const std::string& dir, const std::string& split) { load(dir, parse_mnist_split(split)); }
  // Reads an explicit pair of files (tests, other IDX data sets of one channel).
  void load_files(const std::string& images_path, const std::string& labels_path);

  int64_t size() const { return count_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t image_size() const { return rows_ * cols_; }
  static constexpr int kNumClasses = 10;

  // The raw bytes of image i (rows*cols, row-major).
  const uint8_t* raw_image(int64_t i) const;
  // Image i scaled to (v - 127.5) / 255 into out (rows*cols floats).
  void copy_image(int64_t i, float* out) const;
  int label(int64_t i) const;

 private:
  void check_index(int64_t i) const;

  int64_t count_ = 0, rows_ = 0, cols_ = 0;
  std::vector<uint8_t> pixels_;  // (count, rows, cols)
  std::vector<uint8_t> labels_;  // (count)
};

enum class SampleOrder { kSequential, kShuffled };

// The order in which samples of a data set of `size` items are visited, epoch by
// epoch. Pure: the same (seed, epoch, position) always gives the same sample. The
// last two epochs' permutations are cached behind a mutex, so the const methods may
// be called from several threads.
class BatchSampler {
 public:
  BatchSampler(int64_t size, uint64_t seed, SampleOrder order);
  int64_t size() const { return size_; }
  SampleOrder order() const { return order_; }
  // Sample index at `position` of `epoch` (0 <= position < size).
  int64_t sample(int64_t epoch, int64_t position) const;
  // Sample index at a position of the concatenated epochs (epoch = g / size).
  int64_t sample_at(int64_t global_position) const {
    return sample(global_position / size_, global_position % size_);
  }
  // The whole order of one epoch (a permutation of 0..size-1), computed afresh.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  int64_t size_;
  uint64_t seed_;
  SampleOrder order_;
  struct Cached { int64_t epoch = -1; std::vector<int64_t> order; };
  mutable std::mutex mutex_;
  mutable Cached cache_[2];
  mutable int next_slot_ = 0;
};

// Batches of MNIST for training or testing: images (B, 1, rows, cols), labels (B).
class MnistBatches {
 public:
  MnistBatches(const MnistDataset& data, uint64_t seed, SampleOrder order)
      : data_(&data), sampler_(data.size(), seed, order) {}
  // Iteration i reads positions [i*B, (i+1)*B) of the concatenated epochs.
  void fill_batch(int64_t iteration, int64_t batch_size, float* images, int32_t* labels) const;
  // Positions [first, first + count) of the concatenated epochs (in the sampler's
  // order): e.g. a rank's slice of a global batch.
  void fill_range(int64_t first_position, int64_t count, float* images, int32_t* labels) const;
  const BatchSampler& sampler() const { return sampler_; }

 private:
  const MnistDataset* data_;
  BatchSampler sampler_;
};

}  // namespace coco
