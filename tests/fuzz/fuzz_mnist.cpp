// libFuzzer target: the MNIST IDX reader (engine/data/mnist.*).
//
// Input: two parts (fuzz_common.h), the images file and the labels file. They are
// read with MnistDataset::load_files; a data set that loads is then read the way
// the trainer reads it: batches in file order and shuffled, across the epoch end.
#include "engine/data/mnist.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  coco::fuzz::init_quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coco;
  const auto parts = fuzz::split_parts(data, size);
  const auto images = fuzz::scratch_dir() / "images-idx3-ubyte";
  const auto labels = fuzz::scratch_dir() / "labels-idx1-ubyte";
  fuzz::write_file(images, parts[0]);
  fuzz::write_file(labels, parts.size() > 1 ? parts[1] : std::string());
  MnistDataset ds;
  if (!fuzz::expect_clean([&] { ds.load_files(images.string(), labels.string()); })) return 0;
  const int64_t batch = std::min<int64_t>(ds.size(), 3);
  std::vector<float> x(static_cast<size_t>(batch * ds.image_size()));
  std::vector<int32_t> y(static_cast<size_t>(batch));
  for (SampleOrder order : {SampleOrder::kSequential, SampleOrder::kShuffled}) {
    fuzz::expect_clean([&] {
      MnistBatches b(ds, 7, order);
      b.fill_batch(0, batch, x.data(), y.data());
      b.fill_range(ds.size() - 1, batch, x.data(), y.data());  // wraps into the next epoch
    });
  }
  return 0;
}
