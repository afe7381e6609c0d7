// insightface's verification .bin files: the pickle reader against files that Python
// writes (tests/face/write_bin.py: Python 2's layout and Python 3's protocols 2-5),
// every truncation and a set of malformed files failing with the file and byte
// offset, and the bin: data source decoding the images in file order.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "engine/common.h"
#include "engine/data/image_source.h"
#include "engine/data/jpeg.h"
#include "engine/data/verification_bin.h"
#include "engine/proto/coco.pb.h"
#include "tests/error_of.h"
#include "tests/image_files.h"

namespace coco {
namespace {

using testing::TempDir;

const std::string kWriter = std::string(COCO_SOURCE_DIR) + "/tests/face/write_bin.py";
const char* kStyles[] = {"py2", "2", "3", "4", "5"};

void run_writer(const std::string& args) {
  const std::string cmd = "python3 " + kWriter + " " + args;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

template <size_t N>
std::string raw(const char (&s)[N]) {  // a literal's bytes, NULs included
  return std::string(s, N - 1);
}

// write_bin.py --synthetic N, rebuilt here.
VerificationBin synthetic_set(int pairs) {
  VerificationBin s;
  for (int i = 0; i < 2 * pairs; ++i) {
    std::string b(1 + (i * 37) % 600, '\0');
    for (size_t k = 0; k < b.size(); ++k) b[k] = static_cast<char>((i * 7 + k) % 256);
    s.images.push_back(b);
  }
  for (int i = 0; i < pairs; ++i) s.issame.push_back(i % 3 == 0);
  return s;
}

// 1,100 pairs: APPENDS batches of 1000 and a last batch, memo indices past 255
// (LONG_BINPUT), strings past 255 bytes (BINSTRING / BINBYTES), frames (protocol 4+).
TEST(VerificationBin, ReadsEveryPickleStyleThatPythonWrites) {
  TempDir dir;
  const VerificationBin want = synthetic_set(1100);
  for (const char* style : kStyles) {
    const std::string path = dir / (std::string("set_") + style + ".bin");
    run_writer(path + " " + style + " --synthetic 1100");
    const VerificationBin got = read_verification_bin(path);
    ASSERT_EQ(got.pairs(), 1100) << style;
    EXPECT_EQ(got.issame, want.issame) << style;
    ASSERT_EQ(got.images.size(), want.images.size()) << style;
    for (size_t i = 0; i < want.images.size(); ++i) ASSERT_EQ(got.images[i], want.images[i]) << style << " image " << i;
  }
}

// Every prefix of a valid file is an error that names the file and a byte offset.
TEST(VerificationBin, EveryTruncationIsAnErrorNamingTheFile) {
  TempDir dir;
  for (const char* style : kStyles) {
    const std::string path = dir / "small.bin";
    run_writer(path + " " + style + " --synthetic 2");
    const std::string bytes = file_bytes(path);
    for (size_t n = 0; n < bytes.size(); ++n) {
      const std::string e = testing::error_of([&] { parse_verification_bin(bytes.substr(0, n), "cut.bin"); });
      ASSERT_NE(e.find("cut.bin: byte "), std::string::npos) << style << " cut at " << n << ": '" << e << "'";
    }
  }
}

TEST(VerificationBin, OtherShapesAndOpcodesAreErrorsWithTheirOffset) {
  const struct {
    std::string bytes;
    const char* want;
  } cases[] = {
      // ([b'ab'], [True, False]): two flags for one image.
      {raw("\x80\x03]C\x02" "ab" "a]\x88" "a\x89" "a\x86."), "bins holds 1 images for 2 pairs"},
      // (b'ab', []) : bins is not a list.
      {raw("\x80\x03" "C\x02" "ab]\x86."), "bins is bytes, not a list"},
      // ([b'ab', b'cd'], [1]): an integer where a bool belongs.
      {raw("\x80\x03](C\x02" "abC\x02" "cde](K\x01" "e\x86."), "opcode 0x4b"},
      // numpy.core.multiarray._reconstruct: a numpy array.
      {raw("\x80\x02" "cnumpy.core.multiarray\n_reconstruct\n."), "numpy.core.multiarray._reconstruct"},
      // a list appended into itself through the memo.
      {raw("\x80\x02]q\x00h\x00" "a."), "byte 5: a memo get of a list"},
      // protocol 9.
      {raw("\x80\x09."), "byte 0: pickle protocol 9"},
      // (b'x', b'y', b'z') is not a pair of lists.
      {raw("\x80\x03" "C\x01xC\x01yC\x01z\x87."), "a tuple of 3, not the tuple (bins, issame_list)"},
  };
  for (const auto& c : cases) {
    const std::string e = testing::error_of([&] { parse_verification_bin(c.bytes, "bad.bin"); });
    EXPECT_NE(e.find("bad.bin: byte "), std::string::npos) << e;
    EXPECT_NE(e.find(c.want), std::string::npos) << "want '" << c.want << "' in '" << e << "'";
  }
  EXPECT_NE(testing::error_of([] { read_verification_bin("/nonexistent/lfw.bin"); })
                .find("/nonexistent/lfw.bin: cannot open"),
            std::string::npos);
}

// bin:FILE serves the images in file order, decoded as any image source does;
// a sample's label is its pair's index.
TEST(VerificationBin, BinSourceServesTheImagesInFileOrder) {
  TempDir dir;
  std::string images;
  std::vector<std::vector<uint8_t>> jpegs;
  for (int i = 0; i < 6; ++i) {
    jpegs.push_back(testing::synthetic_jpeg(20, 16, i));
    const std::string p = dir / ("img" + std::to_string(i) + ".jpg");
    testing::write_bytes(p, jpegs.back());
    images += " " + p;
  }
  for (const char* style : kStyles) {
    const std::string path = dir / "set.bin";
    run_writer(path + " " + style + images + " --issame 1,0,1");
    proto::DataSourceParameter p;
    p.set_source("bin:" + path);
    p.set_threads(0);
    const auto src = open_data_source(p, "", 1, "test");
    ASSERT_EQ(src->size(), 6);
    EXPECT_EQ(src->sample_shape(), (Shape{3, 20, 16}));
    EXPECT_NE(src->describe().find("6 images, 3 pairs"), std::string::npos) << src->describe();
    std::vector<float> data(6 * 3 * 20 * 16);
    std::vector<int32_t> labels(6);
    src->fill_range(0, 6, data.data(), labels.data());
    EXPECT_EQ(labels, (std::vector<int32_t>{0, 0, 1, 1, 2, 2}));
    // Image 4, pixel (row 3, col 5), red: (value - 127.5) / 128 as the source scales it.
    ImageU8 img;
    decode_jpeg(jpegs[4].data(), jpegs[4].size(), "img4", &img, 20, 16);
    EXPECT_FLOAT_EQ(data[4 * 960 + 3 * 16 + 5], (img.pixels[(3 * 16 + 5) * 3] - 127.5f) * 0.0078125f) << style;
  }
  // A file that is not a verification set fails when the source opens, naming it.
  testing::write_bytes(dir / "not.bin", {'G', 'I', 'F', '8'});
  proto::DataSourceParameter p;
  p.set_source("bin:" + (dir / "not.bin"));
  const std::string e = testing::error_of([&] { open_data_source(p, "", 1, "val.prototxt"); });
  EXPECT_NE(e.find("not.bin: byte 0: opcode 0x47"), std::string::npos) << e;
  EXPECT_NE(e.find("data source of val.prototxt"), std::string::npos) << e;
}

}  // namespace
}  // namespace coco
