// libFuzzer target: the MXNet RecordIO reader (engine/data/recordio.*) and the rec:
// data source built on it (engine/data/image_source.cpp).
//
// Input: up to four parts (fuzz_common.h):
//   0  train.rec
//   1  train.idx   ("key\toffset" lines)
//   2  property    ("num_classes,height,width"); absent: no property file
//   3  options: a DataSourceParameter in text format (on_corrupt, crop_size,
//      shuffle_block, mirror, ...); source, batch size and threads are fixed here.
// Every record is read raw (read_all, then by each index offset) and the package is
// opened as `rec:` and read like the trainer reads it: a test batch, two training
// batches (one across the epoch end). The decode runs in this thread (threads: 0),
// so a finding reproduces.
#include <google/protobuf/text_format.h>

#include "engine/data/recordio.h"
#include "engine/data/source.h"
#include "engine/proto/coco.pb.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  coco::fuzz::init_quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coco;
  const auto parts = fuzz::split_parts(data, size);
  const auto dir = fuzz::scratch_dir();
  const auto rec = dir / "train.rec", idx = dir / "train.idx", prop = dir / "property";
  fuzz::write_file(rec, parts[0]);
  fuzz::write_file(idx, parts.size() > 1 ? parts[1] : std::string());
  std::error_code ec;
  std::filesystem::remove(prop, ec);
  if (parts.size() > 2) fuzz::write_file(prop, parts[2]);
  proto::DataSourceParameter p;
  if (parts.size() > 3) google::protobuf::TextFormat::ParseFromString(parts[3], &p);
  p.set_source("rec:" + (dir / "train").string());
  p.set_batch_size(2);
  p.set_threads(0);

  // The raw reader.
  std::vector<std::pair<uint64_t, uint64_t>> index;
  fuzz::expect_clean([&] {
    RecordFile f(rec.string());
    fuzz::expect_clean([&] { (void)f.read_all(); });
    if (!fuzz::expect_clean([&] { index = read_record_index(idx.string()); })) return;
    for (size_t i = 0; i < index.size() && i < 64; ++i) {
      fuzz::expect_clean([&] {
        const std::string payload = f.read_record(index[i].second, 16);
        (void)parse_payload(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), "record");
      });
    }
  });
  if (parts.size() > 2) fuzz::expect_clean([&] { (void)read_record_property(prop.string()); });

  // The data source.
  std::unique_ptr<DataSource> src;
  if (!fuzz::expect_clean([&] { src = open_data_source(p, "", 3, "fuzz"); })) return 0;
  // The trainer compares the sample size with the net's input before it reads a
  // batch, so an absurd property size never gets this far there.
  const int64_t floats = shape_count(src->sample_shape());
  if (floats <= 0 || floats > (1 << 20)) return 0;
  const int64_t n = std::min<int64_t>(src->size(), 2);
  std::vector<float> x(static_cast<size_t>(2 * floats));
  std::vector<int32_t> y(2);
  fuzz::expect_clean([&] { src->fill_range(0, n, x.data(), y.data()); });
  fuzz::expect_clean([&] { src->fill_train(0, 2, x.data(), y.data()); });
  fuzz::expect_clean([&] { src->fill_train(src->size() - 1, 2, x.data(), y.data()); });
  return 0;
}
