// Data sources: where a phase's samples come from, named by a URI-like string.
//
//   mnist:DIR   the four MNIST IDX files in DIR (split "train" or "test")
//   rec:PREFIX  MXNet RecordIO PREFIX.rec/.idx + property (engine/data/image_source.h)
//   list:FILE   "path label" per line, JPEGs (engine/data/image_source.h)
//   bin:FILE    an insightface verification set, e.g. lfw.bin (engine/data/bin_source.cpp)
//
// The training sequence is the concatenation of per-epoch orders (shuffled from
// (seed, epoch) or not), and position p of it is a pure function of (seed, p).
// Iteration i of global batch B holds positions [i*B, (i+1)*B); under data
// parallelism rank r reads its own contiguous slice of those. Resuming at any
// iteration therefore reads exactly what an uninterrupted run would have read.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "engine/proto_fwd.h"
#include "engine/tensor.h"

namespace coco {

// The largest class id a label may hold: labels travel as int32 (layers/labels.h).
constexpr int64_t kMaxClassId = 2147483646;  // K <= 2^31 - 1 (num_output)

// A class id as read from a file, for messages: an integer in full (16777217, not
// 1.67772e+07), anything else as it is.
std::string class_id_text(double v);

class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual int64_t size() const = 0;
  virtual Shape sample_shape() const = 0;  // without the batch axis
  virtual std::string describe() const = 0;
  // Positions [first, first + count) of the training sequence.
  // data: (count, sample_shape...), labels: (count).
  virtual void fill_train(int64_t first, int64_t count, float* data, int32_t* labels) const = 0;
  // Source order: samples [start, start + n), for evaluation passes.
  virtual void fill_range(int64_t start, int64_t n, float* data, int32_t* labels) const = 0;
};

// Opens `p.source`. A relative directory is resolved against `data_root` if given
// (--data-root replaces the directory part of the source), else the working directory.
std::unique_ptr<DataSource> open_data_source(const proto::DataSourceParameter& p, const std::string& data_root,
                                             uint64_t seed, const std::string& origin);

// Runs `open` (a source's constructor); a coco::Error it throws gets "(data source of
// ORIGIN[; HINT])" appended, so a bad file also names the config that asked for it.
std::unique_ptr<DataSource> open_for(const std::string& origin, const std::function<std::unique_ptr<DataSource>()>& open,
                                     const std::string& hint = "");

}  // namespace coco
