// Data sources: where a phase's samples come from, named by a URI-like string.
//
//   mnist:DIR   the four MNIST IDX files in DIR (split "train" or "test")
//
// A batch is a pure function of (seed, iteration): iteration i holds samples
// [i*B, (i+1)*B) of the sequence of per-epoch shuffles. Resuming at any iteration
// therefore reads exactly what an uninterrupted run would have read, with no state.
#pragma once

#include <memory>
#include <string>

#include "engine/proto_fwd.h"
#include "engine/tensor.h"

namespace coco {

class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual int64_t size() const = 0;
  virtual Shape sample_shape() const = 0;  // without the batch axis
  virtual std::string describe() const = 0;
  // Training order: batch `iteration` of `batch` samples, shuffled per epoch if asked.
  // data: (batch, sample_shape...), labels: (batch).
  virtual void fill_batch(int64_t iteration, int64_t batch, float* data, float* labels) const = 0;
  // Source order: samples [start, start + n), for evaluation passes.
  virtual void fill_range(int64_t start, int64_t n, float* data, float* labels) const = 0;
};

// Opens `p.source`. A relative directory is resolved against `data_root` if given
// (--data-root replaces the directory part of the source), else the working directory.
std::unique_ptr<DataSource> open_data_source(const proto::DataSourceParameter& p, const std::string& data_root,
                                             uint64_t seed, const std::string& origin);

}  // namespace coco
