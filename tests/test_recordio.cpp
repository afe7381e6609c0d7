// The MXNet RecordIO format: split records, IRHeader labels, the index and property
// files, and the errors for truncated and corrupt files. Byte layouts are written
// out by hand here (not only through RecordWriter), so writer and reader cannot
// agree on a wrong format.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "engine/common.h"
#include "engine/data/recordio.h"
#include "tests/test_files.h"

namespace coco {
namespace {

using testing::TempDir;
using testing::write_bytes;

void le32(std::vector<uint8_t>& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void part(std::vector<uint8_t>& b, uint32_t cflag, const std::string& data) {
  le32(b, kRecordMagic);
  le32(b, cflag << 29 | static_cast<uint32_t>(data.size()));
  b.insert(b.end(), data.begin(), data.end());
  while (b.size() % 4) b.push_back(0);
}
const std::string kMagicStr("\x0a\x23\xd7\xce", 4);

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

TEST(RecordIO, ReadsHandWrittenWholeAndSplitRecords) {
  TempDir dir;
  std::vector<uint8_t> b;
  part(b, 0, "hello");                        // whole, padded 5 -> 8
  part(b, 1, "abcd");                         // split: start
  part(b, 2, "efgh");                         //        middle
  part(b, 3, "ij");                           //        end
  part(b, 1, "");                             // a payload that starts with the magic
  part(b, 3, "tail");
  write_bytes(dir / "a.rec", b);
  RecordFile f(dir / "a.rec");
  const auto all = f.read_all();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].first, 0u);
  EXPECT_EQ(all[0].second, "hello");
  EXPECT_EQ(all[1].first, 16u);
  EXPECT_EQ(all[1].second, "abcd" + kMagicStr + "efgh" + kMagicStr + "ij");
  EXPECT_EQ(all[2].second, kMagicStr + "tail");
  EXPECT_EQ(f.read_record(16), all[1].second);
  EXPECT_EQ(f.read_record(16, 8), all[1].second);  // a first read too short: reads more
}

TEST(RecordIO, WriterSplitsAtAlignedMagicOnlyAndReadsBackExactly) {
  TempDir dir;
  // The magic at aligned offsets 0, 8 and 12 (back to back) and at the very end;
  // an unaligned one at offset 17 must stay inside a part.
  std::string payload = kMagicStr + "abcd" + kMagicStr + kMagicStr + "q" + kMagicStr + "xyz" + kMagicStr;
  ASSERT_EQ(payload.find(kMagicStr, 17), 17u);  // "q" at 16 makes this magic unaligned
  const std::string small = "tiny";
  {
    RecordWriter w(dir / "b.rec");
    EXPECT_EQ(w.write(payload.data(), payload.size()), 0u);
    const uint64_t second = w.write(small.data(), small.size());
    EXPECT_EQ(second % 4, 0u);
    EXPECT_EQ(w.splits(), 4);
    w.close();
  }
  const auto bytes = file_bytes(dir / "b.rec");
  // First part: flag 1 (start), length 0, since the payload begins with the magic.
  uint32_t lrec;
  std::memcpy(&lrec, bytes.data() + 4, 4);
  EXPECT_EQ(lrec >> 29, 1u);
  EXPECT_EQ(lrec & kRecordMaxLength, 0u);
  RecordFile f(dir / "b.rec");
  const auto all = f.read_all();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].second, payload);
  EXPECT_EQ(all[1].second, small);
}

TEST(RecordIO, MultiLabelHeaderLayout) {
  RecordHeader h;
  h.label = 9;  // ignored: labels win, flag = 3, label = 0 (MXNet's pack)
  h.labels = {3, 5.5f, 7};
  h.id = 0x0102030405060708ull;
  h.id2 = 42;
  const std::string p = pack_payload(h, "JPEG", 4);
  ASSERT_EQ(p.size(), 24u + 12u + 4u);
  const auto* u = reinterpret_cast<const uint8_t*>(p.data());
  EXPECT_EQ(u[0], 3);  // flag, little-endian
  float label0;
  std::memcpy(&label0, u + 4, 4);
  EXPECT_EQ(label0, 0.0f);
  EXPECT_EQ(u[8], 0x08);  // id low byte first
  const PayloadView v = parse_payload(u, p.size(), "test");
  EXPECT_EQ(v.header.flag, 3u);
  ASSERT_EQ(v.header.labels.size(), 3u);
  EXPECT_EQ(v.header.labels[1], 5.5f);
  EXPECT_EQ(v.header.class_label(), 3.0f);
  EXPECT_EQ(v.header.id, h.id);
  EXPECT_EQ(v.header.id2, 42u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(v.body), v.body_bytes), "JPEG");
  // A single label: flag 0, the label in the header.
  RecordHeader one;
  one.label = 17;
  const std::string q = pack_payload(one, "", 0);
  const PayloadView w = parse_payload(reinterpret_cast<const uint8_t*>(q.data()), q.size(), "test");
  EXPECT_EQ(w.header.flag, 0u);
  EXPECT_EQ(w.header.class_label(), 17.0f);
  EXPECT_EQ(w.body_bytes, 0u);
}

TEST(RecordIO, HeaderClaimingMoreLabelsThanBytesIsAnError) {
  RecordHeader h;
  h.labels = {1, 2};
  std::string p = pack_payload(h, "", 0);
  p[0] = 50;  // flag 50: 200 bytes of labels that are not there
  try {
    parse_payload(reinterpret_cast<const uint8_t*>(p.data()), p.size(), "x.rec: record at byte 64");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.rec: record at byte 64"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("50 labels"), std::string::npos) << e.what();
  }
}

TEST(RecordIO, TruncatedRecordNamesItsOffset) {
  TempDir dir;
  std::vector<uint8_t> b;
  part(b, 0, "first record");  // 8 + 12 bytes
  part(b, 0, std::string(100, 'z'));
  b.resize(b.size() - 30);
  write_bytes(dir / "t.rec", b);
  RecordFile f(dir / "t.rec");
  EXPECT_EQ(f.read_record(0), "first record");
  try {
    f.read_record(20);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("byte 20"), std::string::npos) << m;
    EXPECT_NE(m.find("truncated"), std::string::npos) << m;
  }
  EXPECT_THROW(f.read_all(), Error);
  // A split record whose end part is missing is truncated too.
  std::vector<uint8_t> s;
  part(s, 1, "abcd");
  write_bytes(dir / "s.rec", s);
  EXPECT_THROW(RecordFile(dir / "s.rec").read_record(0), Error);
}

TEST(RecordIO, CorruptMagicAndBadContinuationAreErrors) {
  TempDir dir;
  std::vector<uint8_t> b;
  part(b, 0, "good");
  part(b, 0, "bad!");
  b[12] ^= 0xff;  // the second record's magic
  write_bytes(dir / "c.rec", b);
  RecordFile f(dir / "c.rec");
  try {
    f.read_record(12);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("c.rec: byte 12: bad record magic 0xced723f5"), std::string::npos) << m;
  }
  std::vector<uint8_t> m;
  part(m, 2, "middle");  // a record cannot begin with a middle part
  write_bytes(dir / "m.rec", m);
  EXPECT_THROW(RecordFile(dir / "m.rec").read_record(0), Error);
  std::vector<uint8_t> n;
  part(n, 1, "abcd");
  part(n, 0, "new!");  // a whole record before the split one ended
  write_bytes(dir / "n.rec", n);
  EXPECT_THROW(RecordFile(dir / "n.rec").read_record(0), Error);
}

TEST(RecordIO, IndexAndPropertyFiles) {
  TempDir dir;
  write_record_index(dir / "a.idx", {{0, 0}, {1, 32}, {7, 1024}});
  const auto idx = read_record_index(dir / "a.idx");
  ASSERT_EQ(idx.size(), 3u);
  EXPECT_EQ(idx[2].first, 7u);
  EXPECT_EQ(idx[2].second, 1024u);
  std::ofstream(dir / "bad.idx") << "0\t0\n1\tforty\n";
  try {
    read_record_index(dir / "bad.idx");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.idx:2"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "property") << "85742,112,112";  // insightface writes no newline
  const auto p = read_record_property(dir / "property");
  EXPECT_EQ(p.num_classes, 85742);
  EXPECT_EQ(p.height, 112);
  std::ofstream(dir / "bad_property") << "85742,112";
  EXPECT_THROW(read_record_property(dir / "bad_property"), Error);
}

}  // namespace
}  // namespace coco
