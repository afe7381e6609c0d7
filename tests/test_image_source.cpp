// rec: and list: sources, coco-pack's round trip, the block-shuffle order,
// augmentation determinism, prefetch == synchronous, and the corrupt-record policy.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "engine/common.h"
#include "engine/data/augment.h"
#include "engine/data/block_order.h"
#include "engine/data/image_source.h"
#include "engine/data/jpeg.h"
#include "engine/data/pack.h"
#include "engine/data/prefetch.h"
#include "engine/data/recordio.h"
#include "engine/proto/coco.pb.h"
#include "tests/image_files.h"

namespace coco {
namespace {

using testing::TempDir;
namespace fs = std::filesystem;

constexpr int kIds = 5, kPer = 4, kSide = 24;

// A package of kIds x kPer generated 24x24 JPEGs; image 2 carries the RecordIO
// magic inside a JPEG comment, at a 4-byte-aligned payload offset, so it splits.
struct Package {
  TempDir dir;
  std::vector<std::vector<uint8_t>> jpegs;  // in label order, as packed
  std::string prefix;
  PackResult result;
  Package() {
    jpegs = testing::write_face_folder(dir / "faces", kIds, kPer, kSide, kSide);
    // payload = 24-byte header + jpeg; the comment text starts at jpeg byte 6.
    // lead 2 puts the magic at payload offset 24 + 8 = 32 (aligned).
    jpegs[2] = testing::with_comment(jpegs[2], testing::magic_text(2));
    testing::write_bytes(dir / "faces/id100/img2.jpg", jpegs[2]);
    prefix = dir / "pkg/train";
    result = pack_records(pack_items_from_folder(dir / "faces"), prefix, PackLayout::kInsightface);
  }
  proto::DataSourceParameter param(int threads = 0) const {
    proto::DataSourceParameter p;
    p.set_source("rec:" + prefix);
    p.set_threads(threads);
    p.set_shuffle_block(4);
    return p;
  }
};

std::unique_ptr<ImageSource> open_image(const proto::DataSourceParameter& p) {
  auto s = open_data_source(p, "", 7, "test");
  return std::unique_ptr<ImageSource>(dynamic_cast<ImageSource*>(s.release()));
}

TEST(Pack, RoundTripIsBitForBitWithTheInsightfaceLayout) {
  Package pkg;
  EXPECT_EQ(pkg.result.images, kIds * kPer);
  EXPECT_EQ(pkg.result.classes, kIds);
  EXPECT_GE(pkg.result.splits, 2);  // the two magics in image 2
  const auto prop = read_record_property(pkg.dir / "pkg/property");
  EXPECT_EQ(prop.num_classes, kIds);
  EXPECT_EQ(prop.height, kSide);
  // Record 0: flag 2, [id_start, id_end) = [N+1, N+1+K); identity records hold key ranges.
  RecordFile f(pkg.prefix + ".rec");
  const auto all = f.read_all();
  ASSERT_EQ(all.size(), 1u + kIds * kPer + kIds);
  auto header = [&](size_t i) {
    return parse_payload(reinterpret_cast<const uint8_t*>(all[i].second.data()), all[i].second.size(), "t").header;
  };
  EXPECT_EQ(header(0).flag, 2u);
  EXPECT_EQ(header(0).labels[0], kIds * kPer + 1.0f);
  EXPECT_EQ(header(0).labels[1], kIds * kPer + 1.0f + kIds);
  for (int k = 0; k < kIds; ++k) {
    const auto h = header(1 + kIds * kPer + k);
    EXPECT_EQ(h.labels[0], 1.0f + k * kPer);
    EXPECT_EQ(h.labels[1], 1.0f + (k + 1) * kPer);
  }
  // Through the source: every image's bytes and label, bit for bit.
  auto src = open_image(pkg.param());
  ASSERT_EQ(src->size(), kIds * kPer);
  EXPECT_EQ(src->num_classes(), kIds);
  const auto enc = src->encoded(0, src->size());
  for (int i = 0; i < kIds * kPer; ++i) {
    ASSERT_TRUE(enc[i].error.empty()) << enc[i].error;
    const std::string body = enc[i].buffer.substr(enc[i].body_offset, enc[i].body_bytes);
    EXPECT_EQ(body, std::string(pkg.jpegs[i].begin(), pkg.jpegs[i].end())) << "image " << i;
    EXPECT_EQ(enc[i].label, static_cast<float>(i / kPer));
  }
  EXPECT_NO_THROW(verify_pack(pack_items_from_folder(pkg.dir / "faces"), pkg.prefix, PackLayout::kInsightface));
}

TEST(Pack, ListFileSortsByLabelAndRejectsMixedSizes) {
  TempDir dir;
  const auto a = testing::synthetic_jpeg(kSide, kSide, 1), b = testing::synthetic_jpeg(kSide, kSide, 2);
  testing::write_bytes(dir / "a.jpg", a);
  testing::write_bytes(dir / "b.jpg", b);
  std::ofstream(dir / "list.txt") << "# comment\nb.jpg 1\na.jpg 0\n";
  pack_records(pack_items_from_list(dir / "list.txt"), dir / "out/x", PackLayout::kPlain);
  const auto recs = RecordFile(dir / "out/x.rec").read_all();
  ASSERT_EQ(recs.size(), 2u);  // plain: no header records
  const auto v = parse_payload(reinterpret_cast<const uint8_t*>(recs[0].second.data()), recs[0].second.size(), "t");
  EXPECT_EQ(v.header.label, 0.0f);
  EXPECT_EQ(std::vector<uint8_t>(v.body, v.body + v.body_bytes), a);
  testing::write_bytes(dir / "big.jpg", testing::synthetic_jpeg(kSide + 8, kSide, 3));
  std::ofstream(dir / "mixed.txt") << "a.jpg 0\nbig.jpg 1\n";
  try {
    pack_records(pack_items_from_list(dir / "mixed.txt"), dir / "out/y", PackLayout::kPlain);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mixed.txt:2"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "badlabel.txt") << "a.jpg zero\n";
  EXPECT_THROW(pack_items_from_list(dir / "badlabel.txt"), Error);
  // Class ids past float32's 2^24 (it has no 16777217) pack and read back exactly:
  // each record's id2 carries its id (once packed as 16777216 and "verified").
  std::ofstream(dir / "huge.txt") << "a.jpg 16777216\nb.jpg 16777217\n";
  pack_records(pack_items_from_list(dir / "huge.txt"), dir / "out/huge", PackLayout::kPlain);
  verify_pack(pack_items_from_list(dir / "huge.txt"), dir / "out/huge", PackLayout::kPlain);
  proto::DataSourceParameter hp;
  hp.set_source("rec:" + (dir / "out/huge"));
  hp.set_threads(0);
  const auto huge = open_data_source(hp, "", 1, "test");
  std::vector<float> hd(static_cast<size_t>(2 * shape_count(huge->sample_shape())));
  std::vector<int32_t> hl(2);
  huge->fill_range(0, 2, hd.data(), hl.data());
  EXPECT_EQ(hl, (std::vector<int32_t>{16777216, 16777217}));
  std::ofstream(dir / "past.txt") << "a.jpg 2147483647\n";
  try {
    pack_items_from_list(dir / "past.txt");
    FAIL() << "a label past int32's class ids was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("past.txt:1: the label 2147483647 is past 2147483646"), std::string::npos)
        << e.what();
  }
  std::ofstream(dir / "top.txt") << "a.jpg 16777215\n";  // the largest float-exact class id
  pack_records(pack_items_from_list(dir / "top.txt"), dir / "out/top", PackLayout::kPlain);
  verify_pack(pack_items_from_list(dir / "top.txt"), dir / "out/top", PackLayout::kPlain);
  // The identity layout's key ranges would pass 2^24 (one image, 16777216 identities).
  try {
    pack_records(pack_items_from_list(dir / "top.txt"), dir / "out/top_ids", PackLayout::kInsightface);
    FAIL() << "identity records past 2^24 keys were written";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pack with --plain"), std::string::npos) << e.what();
  }
}

std::string file_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// A pack that fails leaves the earlier package under the same prefix as it was, and
// no partial file; a second split packed beside it keeps the first split's metadata.
TEST(Pack, AFailedPackLeavesTheEarlierPackageAndSplitsKeepTheirMetadata) {
  Package pkg;
  const std::string rec = file_text(pkg.prefix + ".rec"), idx = file_text(pkg.prefix + ".idx"),
                    prop = file_text(pkg.dir / "pkg/property");
  testing::write_bytes(pkg.dir / "faces/id101/img1.jpg", {'n', 'o', 't', ' ', 'a', ' ', 'j', 'p', 'e', 'g'});
  EXPECT_THROW(pack_records(pack_items_from_folder(pkg.dir / "faces"), pkg.prefix, PackLayout::kInsightface), Error);
  EXPECT_EQ(file_text(pkg.prefix + ".rec"), rec);
  EXPECT_EQ(file_text(pkg.prefix + ".idx"), idx);
  EXPECT_EQ(file_text(pkg.dir / "pkg/property"), prop);
  for (const auto& e : fs::directory_iterator(pkg.dir / "pkg"))
    EXPECT_EQ(e.path().filename().string().find("partial"), std::string::npos) << e.path();

  // A validation split of 2 identities of another size, in the same folder.
  testing::write_face_folder(pkg.dir / "val_faces", 2, 3, kSide + 8, kSide + 8);
  pack_records(pack_items_from_folder(pkg.dir / "val_faces"), pkg.dir / "pkg/val", PackLayout::kInsightface);
  EXPECT_EQ(file_text(pkg.dir / "pkg/property"), prop);  // insightface's file still describes train.rec
  EXPECT_EQ(read_record_property(pkg.dir / "pkg/val.property").num_classes, 2);
  EXPECT_EQ(read_record_property(pkg.dir / "pkg/train.property").num_classes, kIds);
  auto p = pkg.param();
  p.set_source("rec:" + pkg.dir / "pkg/val");
  auto v = open_image(p);
  EXPECT_EQ(v->num_classes(), 2);
  EXPECT_EQ(v->size(), 6);
  EXPECT_EQ(open_image(pkg.param())->num_classes(), kIds);
}

TEST(RecordSource, DecodesToNormalisedChwFloats) {
  Package pkg;
  auto src = open_image(pkg.param());
  EXPECT_EQ(src->sample_shape(), (Shape{3, kSide, kSide}));
  const int64_t n = src->size(), fl = 3 * kSide * kSide;
  std::vector<float> data(n * fl);
  std::vector<int32_t> labels(n);
  src->fill_range(0, n, data.data(), labels.data());
  for (int i = 0; i < n; i += 7) {
    ImageU8 img;
    decode_jpeg(pkg.jpegs[i].data(), pkg.jpegs[i].size(), "ref", &img);
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < kSide; y += 5)
        for (int x = 0; x < kSide; x += 3)
          ASSERT_EQ(data[i * fl + (c * kSide + y) * kSide + x], (img.pixels[(y * kSide + x) * 3 + c] - 127.5f) / 128)
              << i << " " << c << " " << y << " " << x;
    EXPECT_EQ(labels[i], i / kPer);
  }
}

TEST(ListSource, ReadsTheSameImagesAsTheRecordSource) {
  Package pkg;
  std::ofstream list(pkg.dir / "faces/list.txt");
  for (int k = 0; k < kIds; ++k)
    for (int j = 0; j < kPer; ++j) list << "id" << 100 + k << "/img" << j << ".jpg " << k << "\n";
  list.close();
  proto::DataSourceParameter p;
  p.set_source("list:" + pkg.dir / "faces/list.txt");
  p.set_threads(0);
  auto lst = open_image(p);
  auto rec = open_image(pkg.param());
  ASSERT_EQ(lst->size(), rec->size());
  EXPECT_EQ(lst->num_classes(), kIds);
  const int64_t n = rec->size(), fl = 3 * kSide * kSide;
  std::vector<float> a(n * fl), b(n * fl);
  std::vector<int32_t> la(n), lb(n);
  lst->fill_range(0, n, a.data(), la.data());
  rec->fill_range(0, n, b.data(), lb.data());
  EXPECT_EQ(a, b);
  EXPECT_EQ(la, lb);
  // Training order: a full per-sample shuffle that still covers each image once.
  std::vector<int64_t> r = lst->order().records(0, n);
  std::sort(r.begin(), r.end());
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(r[i], i);
  // A bad line is an error naming the line.
  std::ofstream(pkg.dir / "faces/bad.txt") << "id100/img0.jpg 0\nid100/img1.jpg -3\n";
  p.set_source("list:" + pkg.dir / "faces/bad.txt");
  try {
    open_image(p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.txt:2"), std::string::npos) << e.what();
  }
  std::ofstream(pkg.dir / "faces/missing.txt") << "id100/img0.jpg 0\nnope.jpg 1\n";
  p.set_source("list:" + pkg.dir / "faces/missing.txt");
  auto m = open_image(p);
  EXPECT_THROW(m->fill_range(0, 2, a.data(), la.data()), Error);
}

TEST(BlockOrder, IsAPermutationOfBlocksPureAndLocal) {
  const int64_t n = 103, block = 8;  // 13 blocks, the last one short (7 records)
  BlockShuffleOrder o(n, block, 5, SampleOrder::kShuffled), again(n, block, 5, SampleOrder::kShuffled);
  for (int64_t e = 0; e < 3; ++e) {
    const auto r = o.records(e * n, n);
    EXPECT_EQ(r, again.records(e * n, n));
    std::vector<int64_t> s = r;
    std::sort(s.begin(), s.end());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(s[i], i);
    // Consecutive positions stay inside one block until it is used up.
    int64_t runs = 1;
    for (int64_t i = 1; i < n; ++i) runs += r[i] / block != r[i - 1] / block;
    EXPECT_EQ(runs, 13);
  }
  EXPECT_NE(o.records(0, n), o.records(n, n));  // each epoch its own order
  // Any slice equals the same positions of the whole sequence (resume, ranks).
  const auto whole = o.records(0, 3 * n);
  for (int64_t first : {0, 5, 50, 101, 150, 250}) {
    const auto part = o.records(first, 40);
    for (int64_t i = 0; i < 40; ++i) ASSERT_EQ(part[i], whole[first + i]) << first + i;
  }
  BlockShuffleOrder seq(n, block, 5, SampleOrder::kSequential);
  EXPECT_EQ(seq.record(n + 3), 3);
}

TEST(BlockOrder, RanksGivenDisjointSlicesReadDisjointBlocks) {
  const int64_t n = 4096, block = 16, per_rank = 64, ranks = 4, global = per_rank * ranks;
  BlockShuffleOrder o(n, block, 9, SampleOrder::kShuffled);
  std::vector<std::set<int64_t>> blocks(ranks);
  for (int64_t it = 0; it < n / global; ++it)
    for (int64_t r = 0; r < ranks; ++r)
      for (int64_t rec : o.records(it * global + r * per_rank, per_rank)) blocks[r].insert(rec / block);
  size_t total = 0;
  for (int64_t r = 0; r < ranks; ++r) {
    total += blocks[r].size();
    EXPECT_EQ(blocks[r].size(), static_cast<size_t>(n / block / ranks));  // a quarter of the file each
  }
  EXPECT_EQ(total, static_cast<size_t>(n / block));  // so no block is read by two ranks
}

TEST(Augment, FlipAndCropArePureFunctionsOfSeedAndPosition) {
  ImageU8 img;
  img.height = 6;
  img.width = 8;
  img.pixels.resize(6 * 8 * 3);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>(i * 7 % 251);
  AugmentParams p;
  p.mirror = true;
  p.crop = 4;
  p.mean[0] = 10;
  p.mean[1] = 20;
  p.mean[2] = 30;
  p.scale = 0.5f;
  int flips = 0;
  std::set<std::pair<int, int>> origins;
  for (uint64_t pos = 0; pos < 200; ++pos) {
    const AugmentDraw d = draw_augment(p, AugmentMode::kTrain, 6, 8, 3, pos);
    const AugmentDraw again = draw_augment(p, AugmentMode::kTrain, 6, 8, 3, pos);
    ASSERT_EQ(d.flip, again.flip);
    ASSERT_EQ(d.y0, again.y0);
    ASSERT_TRUE(d.y0 >= 0 && d.y0 <= 2 && d.x0 >= 0 && d.x0 <= 4);
    flips += d.flip;
    origins.insert({d.y0, d.x0});
    std::vector<float> out(3 * 4 * 4);
    augment_image(img, p, AugmentMode::kTrain, 3, pos, out.data());
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x) {
          const int sx = d.x0 + (d.flip ? 3 - x : x);
          const float want = (img.pixels[((d.y0 + y) * 8 + sx) * 3 + c] - p.mean[c]) * 0.5f;
          ASSERT_EQ(out[(c * 4 + y) * 4 + x], want);
        }
  }
  EXPECT_GT(flips, 70);
  EXPECT_LT(flips, 130);
  EXPECT_EQ(origins.size(), 15u);  // every crop origin occurs
  const AugmentDraw t = draw_augment(p, AugmentMode::kTest, 6, 8, 3, 11);
  EXPECT_FALSE(t.flip);
  EXPECT_EQ(t.y0, 1);
  EXPECT_EQ(t.x0, 2);
  // BGR swaps the channel planes.
  p.order = ChannelOrder::kBgr;
  p.mirror = false;
  std::vector<float> out(3 * 16);
  augment_image(img, p, AugmentMode::kTest, 3, 0, out.data());
  EXPECT_EQ(out[0], (img.pixels[(1 * 8 + 2) * 3 + 2] - p.mean[0]) * 0.5f);
}

TEST(RecordSource, TrainingBatchesArePureAndPrefetchEqualsSynchronous) {
  Package pkg;
  proto::DataSourceParameter p = pkg.param(0);
  p.set_mirror(true);
  p.set_crop_size(20);
  auto sync = open_image(p);
  p.set_threads(3);
  p.set_prefetch(4);
  auto pre = open_image(p);
  const int64_t b = 6, fl = 3 * 20 * 20;
  auto batch = [&](ImageSource& s, int64_t first) {
    std::vector<float> d(b * fl);
    std::vector<int32_t> l(b);
    s.fill_train(first, b, d.data(), l.data());
    d.insert(d.end(), l.begin(), l.end());
    return d;
  };
  // Consecutive batches (one rank), then a rank's strided slices, then a jump (resume).
  std::vector<int64_t> firsts;
  for (int64_t i = 0; i < 8; ++i) firsts.push_back(i * b);
  for (int64_t i = 0; i < 6; ++i) firsts.push_back(100 + i * 3 * b + b);
  firsts.push_back(7);
  firsts.push_back(7 + b);
  for (int64_t f : firsts) ASSERT_EQ(batch(*pre, f), batch(*sync, f)) << "positions from " << f;
  // Two epochs of 20 images: different orders, each covering every label kPer times.
  std::vector<float> d(20 * fl);
  std::vector<int32_t> l1(20), l2(20);
  sync->fill_train(0, 20, d.data(), l1.data());
  std::vector<float> d2(20 * fl);
  sync->fill_train(20, 20, d2.data(), l2.data());
  EXPECT_NE(d, d2);
  for (int k = 0; k < kIds; ++k) EXPECT_EQ(std::count(l1.begin(), l1.end(), static_cast<float>(k)), kPer);
}

TEST(Prefetcher, ServesPredictedRequestsFromTheQueueAndRethrowsErrors) {
  std::atomic<int> calls{0};
  BatchPrefetcher pf(
      [&](int64_t first, int64_t count, float* data, int32_t* labels) {
        ++calls;
        if (first == 666) throw Error("bad batch at 666");
        for (int64_t i = 0; i < count; ++i) {
          data[i] = static_cast<float>(first + i);
          labels[i] = static_cast<int32_t>(first + i);
        }
      },
      1, 2, 3);
  std::vector<float> d(4);
  std::vector<int32_t> l(4);
  for (int64_t it = 0; it < 10; ++it) {
    pf.fill(it * 16 + 4, 4, d.data(), l.data());  // rank 1 of 4, batch 4
    for (int i = 0; i < 4; ++i) ASSERT_EQ(d[i], it * 16 + 4 + i);
  }
  EXPECT_EQ(pf.restarts(), 2);  // the first call, then the stride is learnt
  EXPECT_EQ(pf.hits(), 8);
  EXPECT_THROW(pf.fill(666, 4, d.data(), l.data()), Error);
  pf.fill(0, 4, d.data(), l.data());  // and it recovers
  EXPECT_EQ(d[3], 3);
}

// Damages the package: returns the byte offset of image record `i` (file order).
uint64_t image_offset(const std::string& prefix, int i) {
  return read_record_index(prefix + ".idx")[1 + i].second;
}

TEST(RecordSource, CorruptMagicIsAnErrorWithItsOffsetOrSkipped) {
  Package pkg;
  const uint64_t off = image_offset(pkg.prefix, 5);
  {
    std::fstream f(pkg.prefix + ".rec", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(off));
    f.put('\x77');
  }
  auto src = open_image(pkg.param());
  const int64_t fl = 3 * kSide * kSide;
  std::vector<float> d(20 * fl);
  std::vector<int32_t> l(20);
  try {
    src->fill_range(0, 20, d.data(), l.data());
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("byte " + std::to_string(off) + ": bad record magic"), std::string::npos) << m;
    EXPECT_NE(m.find("on_corrupt: SKIP"), std::string::npos) << m;
  }
  proto::DataSourceParameter p = pkg.param();
  p.set_on_corrupt(proto::DataSourceParameter::SKIP);
  auto skip = open_image(p);
  skip->fill_range(0, 20, d.data(), l.data());
  // Image 5 (label 1) is replaced by image 6 (label 1), byte for byte.
  EXPECT_EQ(l[5], 1.0f);
  EXPECT_TRUE(std::equal(d.begin() + 5 * fl, d.begin() + 6 * fl, d.begin() + 6 * fl));
}

TEST(RecordSource, TruncatedFileIsAnErrorAtOpen) {
  Package pkg;
  // Cut inside the last image record: the identity records' offsets now lie past the end.
  const uint64_t last = image_offset(pkg.prefix, kIds * kPer - 1);
  fs::resize_file(pkg.prefix + ".rec", last + 40);
  try {
    open_image(pkg.param());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("train.idx:"), std::string::npos) << e.what();
  }
  // With the index cut to match (a plain package), the last record itself is reported.
  auto idx = read_record_index(pkg.prefix + ".idx");
  idx.resize(1 + kIds * kPer);
  write_record_index(pkg.prefix + ".idx", idx);
  try {
    open_image(pkg.param());
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("byte " + std::to_string(last) + ": record is truncated"), std::string::npos) << m;
  }
  proto::DataSourceParameter p = pkg.param();
  p.set_on_corrupt(proto::DataSourceParameter::SKIP);
  auto skip = open_image(p);  // warns, and reads on
  std::vector<float> d(3 * kSide * kSide * 2);
  std::vector<int32_t> l(2);
  skip->fill_range(kIds * kPer - 2, 2, d.data(), l.data());
  EXPECT_EQ(l[1], 0.0f);  // the stand-in is the next record in the file: image 0
}

TEST(RecordSource, FolderPrefixAndWrongKindErrors) {
  Package pkg;
  proto::DataSourceParameter p;
  p.set_source("rec:" + pkg.dir / "pkg");  // a folder: pkg/train.rec
  p.set_threads(0);
  EXPECT_EQ(open_image(p)->size(), kIds * kPer);
  p.set_source("rec:" + pkg.dir / "nothing");
  EXPECT_THROW(open_image(p), Error);
  p.set_source("tfrecord:x");
  EXPECT_THROW(open_data_source(p, "", 1, "t"), Error);
  p.set_source("rec:" + pkg.prefix);
  p.set_crop_size(kSide + 1);
  EXPECT_THROW(open_image(p), Error);
}

}  // namespace
}  // namespace coco
