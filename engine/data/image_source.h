// Image data sources: "rec:PREFIX" (MXNet RecordIO, the MS1M/insightface packages)
// and "list:FILE" (Caffe ImageData style: "path label" per line).
//
// Why one base: both give JPEG bytes and a label per sample; decoding, the
// checks, augmentation, the block-shuffled training order, the prefetch workers
// and the corrupt-record policy are the same, so they live here once.
//
// Data flow of one training batch, positions [first, first + count):
//   BlockShuffleOrder -> sample indices -> read_encoded (rec: one sequential read
//   per touched block) -> decode_jpeg -> augment_image (random choices from
//   (seed, position)) -> data (count, 3, H, W), labels (count).
// With threads > 0 a BatchPrefetcher runs this ahead of the trainer. Every batch
// is a pure function of (seed, positions), so prefetch, resume and ranks that
// read disjoint slices all see the same bytes as one synchronous reader.
//
// rec:PREFIX reads PREFIX.rec, PREFIX.idx and `property` beside them; PREFIX may
// also be a folder, then it is FOLDER/<split> (split defaults to "train").
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "engine/data/augment.h"
#include "engine/data/block_order.h"
#include "engine/data/prefetch.h"
#include "engine/data/source.h"

namespace coco {

enum class CorruptPolicy { kFail, kSkip };

// One sample's encoded bytes, or why it could not be read.
struct EncodedSample {
  std::string buffer;                      // owns the bytes
  size_t body_offset = 0, body_bytes = 0;  // the JPEG inside buffer
  double label = 0;   // the class id as read (exact for any int32 id; may be no integer)
  std::string where;  // "train.rec: record at byte 123", "list.txt:5 (a.jpg)"
  std::string error;  // non-empty: unreadable (the message names the place)
};

class ImageSource : public DataSource {
 public:
  ImageSource(const proto::DataSourceParameter& p, uint64_t seed);
  ~ImageSource() override;
  int64_t size() const override { return n_; }
  Shape sample_shape() const override { return {3, out_h_, out_w_}; }
  int64_t num_classes() const { return num_classes_; }
  void fill_train(int64_t first, int64_t count, float* data, int32_t* labels) const override;
  void fill_range(int64_t start, int64_t n, float* data, int32_t* labels) const override;
  // Samples [start, start + n) in file order, encoded (tests and tools).
  std::vector<EncodedSample> encoded(int64_t start, int64_t n) const;
  const BlockShuffleOrder& order() const { return *order_; }

 protected:
  // The subclass constructor ends with this: sample count, image size, classes.
  void finish_setup(int64_t n, int height, int width, int64_t num_classes, int64_t block);
  virtual void read_encoded(const std::vector<int64_t>& indices, std::vector<EncodedSample>* out) const = 0;
  // Joins the workers; every subclass destructor calls it first, since the
  // workers call read_encoded on the subclass.
  void stop_prefetch();
  CorruptPolicy policy() const { return policy_; }
  void warn_once(int64_t index, const std::string& message) const;

 private:
  void produce(const std::vector<int64_t>& indices, int64_t first_position, AugmentMode mode, float* data,
               int32_t* labels) const;
  // Decodes and augments one sample; returns "" or the reason it is unusable.
  std::string convert(const EncodedSample& s, AugmentMode mode, uint64_t position, ImageU8* scratch, float* out) const;

  uint64_t seed_;
  SampleOrder sample_order_;
  CorruptPolicy policy_;
  AugmentParams aug_;
  int threads_, depth_;
  int64_t n_ = 0, num_classes_ = 0;
  int height_ = 0, width_ = 0, out_h_ = 0, out_w_ = 0;
  std::unique_ptr<BlockShuffleOrder> order_;
  mutable std::unique_ptr<BatchPrefetcher> prefetch_;
  mutable std::mutex warn_mu_;
  mutable std::set<int64_t> warned_;
};

// Resolves a rec: path to its prefix (PREFIX.rec): a folder becomes FOLDER/split.
std::string record_prefix(const std::string& path, const std::string& split);

}  // namespace coco
