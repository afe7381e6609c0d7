// The "mnist:DIR" data source: MnistDataset + its stateless batch order.
#include <memory>

#include "engine/common.h"
#include "engine/data/mnist.h"
#include "engine/data/source.h"

namespace coco {

namespace {

class MnistSource final : public DataSource {
 public:
  MnistSource(const std::string& dir, const proto::DataSourceParameter& p, uint64_t seed)
      : split_(p.split()), dir_(dir) {
    data_.load(dir, p.split());
    train_order_ = std::make_unique<MnistBatches>(data_, seed, p.shuffle() ? SampleOrder::kShuffled
                                                                           : SampleOrder::kSequential);
    file_order_ = std::make_unique<MnistBatches>(data_, seed, SampleOrder::kSequential);
  }
  int64_t size() const override { return data_.size(); }
  Shape sample_shape() const override { return {1, data_.rows(), data_.cols()}; }
  std::string describe() const override {
    return "mnist:" + dir_ + " (" + split_ + ", " + std::to_string(data_.size()) + " images)";
  }
  void fill_train(int64_t first, int64_t count, float* data, int32_t* labels) const override {
    train_order_->fill_range(first, count, data, labels);
  }
  void fill_range(int64_t start, int64_t n, float* data, int32_t* labels) const override {
    if (start < 0 || start + n > data_.size())
      COCO_THROW(describe(), ": samples [", start, ", ", start + n, ") out of range");
    file_order_->fill_range(start, n, data, labels);
  }

 private:
  std::string split_, dir_;
  MnistDataset data_;
  std::unique_ptr<MnistBatches> train_order_, file_order_;
};

}  // namespace

std::unique_ptr<DataSource> open_mnist_source(const std::string& dir, const proto::DataSourceParameter& p,
                                              uint64_t seed, const std::string& origin) {
  return open_for(origin, [&] { return std::make_unique<MnistSource>(dir, p, seed); },
                  "fetch MNIST with tools/fetch_mnist.sh or point --data-root at it");
}

}  // namespace coco
