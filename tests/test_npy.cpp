// .npy writer and reader: the header byte for byte (the literal below is what
// NumPy 1.24's np.save writes for the same arrays, checked by hand and against
// Debian's python3-numpy), round trips, and clear errors on bad files.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>

#include "engine/common.h"
#include "test_files.h"
#include "tools/embed/npy.h"

namespace coco {
namespace {

using testing::TempDir;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void expect_error(const std::string& path, const std::string& needle) {
  try {
    read_npy(path);
    FAIL() << "no error for " << path;
  } catch (const Error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find(path), std::string::npos) << w;
    EXPECT_NE(w.find(needle), std::string::npos) << w;
  }
}

TEST(Npy, HeaderMatchesTheFormatByteForByte) {
  // magic, version 1.0, header length 0x76 = 118 (little-endian), the dict, 58 spaces, '\n':
  // 10 + 59 + 58 + 1 = 128 bytes, a multiple of 64.
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  ASSERT_EQ(dict.size(), 59u);
  const std::string expected = std::string("\x93NUMPY\x01\x00\x76\x00", 10) + dict + std::string(58, ' ') + "\n";
  EXPECT_EQ(npy_header(NpyType::kFloat32, {2, 3}), expected);

  // A 1-d shape is written as a one-element tuple "(5,)".
  const std::string h1 = npy_header(NpyType::kInt64, {5});
  EXPECT_EQ(h1.size(), 128u);
  EXPECT_NE(h1.find("{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }"), std::string::npos);
  // Longer shapes still align the data to 64 bytes.
  for (int dims = 1; dims < 12; ++dims) {
    const std::string h = npy_header(NpyType::kFloat32, std::vector<int64_t>(dims, 123456789));
    EXPECT_EQ(h.size() % 64, 0u);
    EXPECT_EQ(h.back(), '\n');
    EXPECT_EQ(static_cast<size_t>(static_cast<unsigned char>(h[8]) | (static_cast<unsigned char>(h[9]) << 8)),
              h.size() - 10);
  }
}

TEST(Npy, FloatAndIntRoundTrip) {
  TempDir d;
  const std::vector<float> f = {1.5f, -2.25f, 0.f, 3e-8f, 1e30f, -0.f};
  write_npy(d / "f.npy", {3, 2}, f.data());
  const std::string bytes = slurp(d / "f.npy");
  ASSERT_EQ(bytes.size(), 128u + 6 * 4);
  float second;
  std::memcpy(&second, bytes.data() + 128 + 4, 4);
  EXPECT_EQ(second, -2.25f);  // data right after the header, C order
  const NpyArray a = read_npy(d / "f.npy");
  EXPECT_EQ(a.type, NpyType::kFloat32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(a.f32, f);

  const std::vector<int64_t> i = {0, 9, -1, int64_t{1} << 40};
  write_npy(d / "i.npy", {4}, i.data());
  const NpyArray b = read_npy(d / "i.npy");
  EXPECT_EQ(b.type, NpyType::kInt64);
  EXPECT_EQ(b.shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(b.i64, i);

  write_npy(d / "empty.npy", {0, 3}, static_cast<const float*>(nullptr));
  const NpyArray c = read_npy(d / "empty.npy");
  EXPECT_EQ(c.shape, (std::vector<int64_t>{0, 3}));
  EXPECT_TRUE(c.f32.empty());
}

TEST(Npy, ReadsHeadersWrittenDifferently) {
  // Keys in another order, double quotes, no trailing comma: still the format.
  TempDir d;
  std::string dict = "{\"shape\": (2,), \"fortran_order\": False, \"descr\": '<i8'}";
  dict.append(64 - (10 + dict.size() + 1) % 64, ' ');
  dict += '\n';
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + char(dict.size() & 0xff) + char(dict.size() >> 8) + dict;
  const int64_t v[2] = {7, 8};
  bytes.append(reinterpret_cast<const char*>(v), sizeof v);
  testing::write_bytes(d / "x.npy", std::vector<uint8_t>(bytes.begin(), bytes.end()));
  const NpyArray a = read_npy(d / "x.npy");
  EXPECT_EQ(a.i64, (std::vector<int64_t>{7, 8}));
}

TEST(Npy, BadFilesAreClearErrors) {
  TempDir d;
  const std::vector<float> f = {1, 2, 3, 4};
  write_npy(d / "good.npy", {2, 2}, f.data());
  std::string good = slurp(d / "good.npy");
  auto put = [&](const std::string& name, const std::string& bytes) {
    testing::write_bytes(d / name, std::vector<uint8_t>(bytes.begin(), bytes.end()));
    return d / name;
  };
  expect_error(put("magic.npy", "PK\x03\x04 not numpy at all"), "magic");
  expect_error(put("trunc.npy", good.substr(0, good.size() - 3)), "needs 16");
  std::string v2 = good;
  v2[6] = 2;
  expect_error(put("v2.npy", v2), "version 2.0");
  std::string f8 = good;
  f8.replace(f8.find("<f4"), 3, "<f8");
  expect_error(put("f8.npy", f8), "'<f8' is not supported");
  std::string fortran = good;
  fortran.replace(fortran.find("False"), 5, "True ");
  expect_error(put("fortran.npy", fortran), "Fortran");
  std::string shape = good;
  shape.replace(shape.find("(2, 2)"), 6, "(2, x)");
  expect_error(put("shape.npy", shape), "at byte 64");  // the 'x': 10 + offset 54 in the dict
  expect_error(d / "missing.npy", "cannot open");
}

}  // namespace
}  // namespace coco
