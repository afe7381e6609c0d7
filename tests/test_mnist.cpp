#include "engine/data/mnist.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "engine/common.h"
#include "tests/test_files.h"

namespace coco::testing {

namespace fs = std::filesystem;

namespace {

const std::vector<uint8_t> kLabels = {3, 1, 4, 1, 5, 9, 2};

// A fresh directory per test, removed afterwards.
class MnistFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("coco_mnist_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write(const std::string& name, const std::vector<uint8_t>& b) const { write_bytes(path(name), b); }
  void write_train(const std::vector<uint8_t>& images, const std::vector<uint8_t>& labels) const {
    write("train-images-idx3-ubyte", images);
    write("train-labels-idx1-ubyte", labels);
  }
  // Expects load to throw a coco::Error whose message holds every one of `parts`.
  void expect_error(const std::vector<std::string>& parts, const std::string& split = "train") const {
    MnistDataset d;
    try {
      d.load(dir_.string(), split);
      ADD_FAILURE() << "load succeeded";
    } catch (const Error& e) {
      const std::string msg = e.what();
      for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    }
  }
  fs::path dir_;
};

}  // namespace

TEST_F(MnistFiles, RoundTripAndScaling) {
  const auto images = idx_images(7, 28, 28);
  write_train(images, idx_labels(kLabels));
  write("t10k-images-idx3-ubyte", idx_images(2, 28, 28));
  write("t10k-labels-idx1-ubyte", idx_labels({0, 9}));
  MnistDataset d;
  d.load(dir_.string(), "train");
  ASSERT_EQ(d.size(), 7);
  ASSERT_EQ(d.rows(), 28);
  ASSERT_EQ(d.cols(), 28);
  std::vector<float> buf(784);
  bool saw0 = false, saw255 = false;
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(d.label(i), kLabels[i]);
    d.copy_image(i, buf.data());
    for (int k = 0; k < 784; ++k) {
      const uint8_t v = images[16 + i * 784 + k];
      ASSERT_EQ(d.raw_image(i)[k], v);
      ASSERT_FLOAT_EQ(buf[k], (v - 127.5f) / 255.0f);
      if (v == 0) { saw0 = true; EXPECT_FLOAT_EQ(buf[k], -0.5f); }
      if (v == 255) { saw255 = true; EXPECT_FLOAT_EQ(buf[k], 0.5f); }
    }
  }
  EXPECT_TRUE(saw0 && saw255);
  MnistDataset t;
  t.load(dir_.string(), MnistSplit::kTest);
  EXPECT_EQ(t.size(), 2);
  EXPECT_EQ(t.label(1), 9);
  EXPECT_THROW(d.label(7), Error);
}

TEST_F(MnistFiles, OtherImageSizeStatedConsistently) {
  write_train(idx_images(3, 5, 4), idx_labels({0, 1, 2}));
  MnistDataset d;
  d.load(dir_.string(), "train");
  EXPECT_EQ(d.rows(), 5);
  EXPECT_EQ(d.cols(), 4);
  EXPECT_EQ(d.image_size(), 20);
  EXPECT_EQ(d.raw_image(2)[3], idx_images(3, 5, 4)[16 + 2 * 20 + 3]);
}

TEST_F(MnistFiles, CorruptMagic) {
  write_train(idx_images(7, 28, 28, 0x00000801), idx_labels(kLabels));
  expect_error({path("train-images-idx3-ubyte"), "magic", "0x00000803", "0x00000801"});
  write_train(idx_images(7, 28, 28), idx_labels(kLabels, 0x08010000));
  expect_error({path("train-labels-idx1-ubyte"), "magic", "0x00000801", "0x08010000"});
}

TEST_F(MnistFiles, TruncatedAndOversizedFiles) {
  auto images = idx_images(7, 28, 28);
  images.pop_back();
  write_train(images, idx_labels(kLabels));
  expect_error({path("train-images-idx3-ubyte"), "truncated", "5504", "5503"});

  images = idx_images(7, 28, 28);
  images.push_back(0);
  write_train(images, idx_labels(kLabels));
  expect_error({path("train-images-idx3-ubyte"), "oversized", "5504", "5505"});

  auto labels = idx_labels(kLabels);
  labels.resize(10);  // header + 2 labels
  write_train(idx_images(7, 28, 28), labels);
  expect_error({path("train-labels-idx1-ubyte"), "truncated", "15", "10"});

  write_train(std::vector<uint8_t>{0, 0, 8, 3, 0, 0}, idx_labels(kLabels));  // a cut header
  expect_error({path("train-images-idx3-ubyte"), "truncated", "16", "6"});
}

TEST_F(MnistFiles, CountMismatch) {
  write_train(idx_images(7, 28, 28), idx_labels({3, 1, 4, 1, 5, 9}));
  expect_error({path("train-images-idx3-ubyte"), path("train-labels-idx1-ubyte"), "7 images", "6 labels"});
}

TEST_F(MnistFiles, LabelOutOfRange) {
  write_train(idx_images(7, 28, 28), idx_labels({3, 1, 4, 1, 10, 9, 2}));
  expect_error({path("train-labels-idx1-ubyte"), "label 10", "index 4"});
}

TEST_F(MnistFiles, MissingFilesAndBadSplit) {
  expect_error({path("t10k-images-idx3-ubyte"), "does not exist"}, "test");
  MnistDataset d;
  EXPECT_THROW(d.load(dir_.string(), "val"), Error);
}

TEST(BatchSampler, ShuffleIsDeterministicAndEachEpochAPermutation) {
  const int64_t n = 1000;
  BatchSampler a(n, 42, SampleOrder::kShuffled), b(n, 42, SampleOrder::kShuffled), c(n, 43, SampleOrder::kShuffled);
  std::vector<std::vector<int64_t>> seen;
  for (int64_t e = 0; e < 4; ++e) {
    const std::vector<int64_t> oa = a.epoch_order(e);
    EXPECT_EQ(oa, b.epoch_order(e)) << "epoch " << e;
    EXPECT_NE(oa, c.epoch_order(e)) << "another seed gives the same order";
    std::vector<int64_t> sorted = oa;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[i], i) << "epoch " << e << " is not a permutation";
    int64_t fixed = 0;
    for (int64_t i = 0; i < n; ++i) fixed += oa[i] == i;
    EXPECT_LT(fixed, 20) << "epoch " << e << " hardly shuffled";
    for (const auto& prev : seen) EXPECT_NE(oa, prev) << "epochs repeat their order";
    seen.push_back(oa);
  }
  // A pure function of (seed, epoch, position): a fresh sampler asked for epoch 3
  // first agrees with one that walked epochs 0..3, in any query order.
  BatchSampler fresh(n, 42, SampleOrder::kShuffled);
  for (int64_t p : {999, 0, 517}) EXPECT_EQ(fresh.sample(3, p), seen[3][p]);
  EXPECT_EQ(fresh.sample(0, 5), seen[0][5]);
  EXPECT_EQ(fresh.sample(2, 5), seen[2][5]);
  EXPECT_EQ(fresh.sample(3, 6), seen[3][6]);
  EXPECT_EQ(fresh.sample_at(2 * n + 7), seen[2][7]);

  BatchSampler seq(n, 42, SampleOrder::kSequential);
  for (int64_t p : {0, 1, 998}) EXPECT_EQ(seq.sample(5, p), p);
}

TEST_F(MnistFiles, IterationBatchesWrapEpochsAndResume) {
  write_train(idx_images(7, 28, 28), idx_labels(kLabels));
  MnistDataset d;
  d.load(dir_.string(), "train");
  const int64_t B = 3;
  std::vector<float> img(B * 784), one(784);
  std::vector<int32_t> lab(B);
  MnistBatches walk(d, 9, SampleOrder::kShuffled);
  BatchSampler order(7, 9, SampleOrder::kShuffled);
  for (int64_t it = 0; it < 10; ++it) {  // 30 positions: epochs 0..4, batches straddling epochs
    walk.fill_batch(it, B, img.data(), lab.data());
    for (int64_t b = 0; b < B; ++b) {
      const int64_t g = it * B + b;
      const int64_t s = order.epoch_order(g / 7)[g % 7];
      EXPECT_EQ(lab[b], static_cast<float>(kLabels[s])) << "iteration " << it << " slot " << b;
      d.copy_image(s, one.data());
      EXPECT_TRUE(std::equal(one.begin(), one.end(), img.begin() + b * 784)) << "iteration " << it;
    }
  }
  // Resume: a new reader at iteration 8 reads what the walking one read there.
  MnistBatches walked(d, 9, SampleOrder::kShuffled), resumed(d, 9, SampleOrder::kShuffled);
  std::vector<float> img2(B * 784);
  std::vector<int32_t> lab2(B);
  for (int64_t it = 0; it <= 8; ++it) walked.fill_batch(it, B, img.data(), lab.data());
  resumed.fill_batch(8, B, img2.data(), lab2.data());
  EXPECT_EQ(img, img2);
  EXPECT_EQ(lab, lab2);
  // Within one epoch, every sample exactly once.
  MnistBatches e(d, 9, SampleOrder::kShuffled);
  std::vector<float> all(7 * 784);
  std::vector<int32_t> all_lab(7);
  e.fill_range(7, 7, all.data(), all_lab.data());  // epoch 1 exactly
  std::multiset<float> got(all_lab.begin(), all_lab.end()), want(kLabels.begin(), kLabels.end());
  EXPECT_EQ(got, want);
  // Test split: no shuffle, position p is sample p mod n.
  MnistBatches seq(d, 9, SampleOrder::kSequential);
  seq.fill_batch(3, B, img.data(), lab.data());  // positions 9, 10, 11 -> samples 2, 3, 4
  for (int64_t b = 0; b < B; ++b) EXPECT_EQ(lab[b], static_cast<float>(kLabels[2 + b]));
}

TEST(MnistRealData, CountsWhenPresent) {
  std::string dir = std::string(COCO_SOURCE_DIR) + "/data/mnist";
  if (const char* env = std::getenv("COCO_MNIST_DIR")) dir = env;
  if (!fs::exists(fs::path(dir) / "train-images-idx3-ubyte"))
    GTEST_SKIP() << "no MNIST in " << dir << " (tools/fetch_mnist.sh fetches it)";
  const int64_t train_counts[10] = {5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949};
  const int64_t test_counts[10] = {980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009};
  for (auto [split, size, counts] : {std::make_tuple("train", 60000, train_counts),
                                     std::make_tuple("test", 10000, test_counts)}) {
    MnistDataset d;
    d.load(dir, split);
    ASSERT_EQ(d.size(), size);
    EXPECT_EQ(d.rows(), 28);
    EXPECT_EQ(d.cols(), 28);
    int64_t hist[10] = {};
    for (int64_t i = 0; i < d.size(); ++i) ++hist[d.label(i)];
    for (int k = 0; k < 10; ++k) EXPECT_EQ(hist[k], counts[k]) << split << " class " << k;
  }
}

}  // namespace coco::testing
