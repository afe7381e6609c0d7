// Bad input that fuzzing (tests/fuzz) or its review turned up: each is one clear
// coco::Error naming the file and what is wrong -- no abort, no undefined behaviour,
// no allocation sized by a corrupt field. The inputs themselves are in
// tests/fuzz/corpus/<target>/regress_*; these tests pin the messages.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <fstream>

#include "comm/communicator.h"
#include "engine/checkpoint.h"
#include "engine/common.h"
#include "engine/config.h"
#include "engine/data/mnist.h"
#include "engine/data/recordio.h"
#include "engine/data/source.h"
#include "engine/net.h"
#include "engine/proto/coco.pb.h"
#include "tests/error_of.h"
#include "engine/tensor.h"
#include "tests/fuzz/fuzz_common.h"
#include "tests/test_files.h"

namespace coco::testing {
namespace {

const std::string kCorpus = std::string(COCO_SOURCE_DIR) + "/tests/fuzz/corpus/";

std::vector<std::string> parts_of(const std::string& corpus_file) {
  const std::string bytes = read_file(kCorpus + corpus_file);
  return fuzz::split_parts(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

TEST(BadInput, RecordWhoseJpegHeaderClaims60000x60000IsRefusedBeforeDecoding) {
  TempDir d;
  const auto parts = parts_of("recordio/regress_jpeg_header_60000x60000");
  write_bytes(d / "train.rec", std::vector<uint8_t>(parts[0].begin(), parts[0].end()));
  std::ofstream(d / "train.idx") << parts[1];
  std::ofstream(d / "property") << parts[2];
  proto::DataSourceParameter p;
  p.set_source("rec:" + (d / "train"));
  p.set_threads(0);
  auto src = open_data_source(p, "", 1, "test");
  std::vector<float> x(3 * 8 * 8 * 3);
  std::vector<int32_t> y(3);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string m = error_of([&] { src->fill_range(0, 3, x.data(), y.data()); });
  EXPECT_NE(m.find("train.rec: record at byte"), std::string::npos) << m;
  EXPECT_NE(m.find("image is 60000x60000, expected 8x8"), std::string::npos) << m;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

TEST(BadInput, RecordIndexWithoutImagesAndAbsurdPropertyAreErrors) {
  TempDir d;
  const auto parts = parts_of("recordio/regress_no_image_records");
  write_bytes(d / "train.rec", std::vector<uint8_t>(parts[0].begin(), parts[0].end()));
  std::ofstream(d / "train.idx") << (parts.size() > 1 ? parts[1] : "");
  proto::DataSourceParameter p;
  p.set_source("rec:" + (d / "train"));
  p.set_threads(0);
  std::string m = error_of([&] { open_data_source(p, "", 1, "test"); });
  EXPECT_NE(m.find("train.rec"), std::string::npos) << m;
  std::ofstream(d / "property") << "2,70000,8\n";
  m = error_of([&] { read_record_property(d / "property"); });
  EXPECT_NE(m.find("property: image size 70000x8 is larger than a JPEG can be"), std::string::npos) << m;
}

TEST(BadInput, MnistSizesThatOverflowOrHoldNothing) {
  TempDir d;
  auto parts = parts_of("mnist/regress_zero_images_huge_rows");
  write_bytes(d / "i", std::vector<uint8_t>(parts[0].begin(), parts[0].end()));
  write_bytes(d / "l", std::vector<uint8_t>(parts[1].begin(), parts[1].end()));
  MnistDataset ds;
  std::string m = error_of([&] { ds.load_files(d / "i", d / "l"); });
  EXPECT_NE(m.find("holds no images"), std::string::npos) << m;
  // 2^22 x 2^21 x 2^21 = 2^64: wrapped to 0 bytes, a 16-byte file passed the size check.
  parts = parts_of("mnist/dims_wrap_64bit");
  write_bytes(d / "i", std::vector<uint8_t>(parts[0].begin(), parts[0].end()));
  m = error_of([&] { ds.load_files(d / "i", d / "l"); });
  EXPECT_NE(m.find("is truncated: its header states 4194304 x 2097152 x 2097152 bytes"), std::string::npos) << m;
}

TEST(BadInput, WeightsWhoseShapeOverflowsNameTheLayer) {
  LocalCommunicator comm;
  proto::NetParameter np;
  parse_text(R"(input: "x" input_shape { dim: 2 dim: 3 }
                layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 } })",
             "<net>", &np);
  Net net(np, Phase::kTrain, &comm, 1);
  const std::string path = kCorpus + "caffemodel/regress_shape_count_overflow";
  const std::string m = error_of([&] { load_weights(net, path); });
  EXPECT_NE(m.find(path + ": layer 'ip' parameter 0 has shape (2147483647, 2147483647, 2147483647, 2147483647)"),
            std::string::npos)
      << m;
  EXPECT_NE(error_of([] { shape_count({1ll << 40, 1ll << 40}); }).find("more elements than a 64-bit count holds"),
            std::string::npos);
}

TEST(BadInput, ConfigNamingADeviceOrAFolderIsRefusedNotReadForever) {
  TempDir d;
  std::ofstream(d / "solver.prototxt") << "net: \"/dev/zero\"\nbase_lr: 0.1\n";
  std::string m = error_of([&] { load_train_config(d / "solver.prototxt"); });
  EXPECT_NE(m.find("/dev/zero: not a file (a device)"), std::string::npos) << m;
  m = error_of([&] { load_train_config(d.path.string()); });
  EXPECT_NE(m.find(": not a file (a folder)"), std::string::npos) << m;
}

TEST(BadInput, ZeroSizedInputIsAnErrorNamingTheLayer) {
  LocalCommunicator comm;
  proto::NetParameter np;
  parse_text(R"(input: "data" input_shape { dim: 2 dim: 0 dim: 6 dim: 6 }
                layer { name: "conv" type: "Convolution" bottom: "data" top: "c"
                        convolution_param { num_output: 1 kernel_size: 3 } })",
             "<net>", &np);
  const std::string m = error_of([&] { Net net(np, Phase::kTrain, &comm, 1, "z.prototxt"); });
  EXPECT_NE(m.find("every dimension must be positive"), std::string::npos) << m;
}

}  // namespace
}  // namespace coco::testing
