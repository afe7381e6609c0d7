// libFuzzer target: insightface's verification .bin reader (engine/data/verification_bin.*).
//
// Input: the file. It is parsed from memory and, written out, opened as a bin: data
// source whose images are decoded (a test batch of up to 2), as coco-export and the
// validation pass read it. Seeds: tests/face/write_bin.py in Python 2's layout and
// Python 3's protocols 2-5, plus truncated and altered copies (corpus/verification_bin).
#include "engine/data/source.h"
#include "engine/data/verification_bin.h"
#include "engine/proto/coco.pb.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  coco::fuzz::init_quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coco;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  if (!fuzz::expect_clean([&] { parse_verification_bin(bytes, "fuzz.bin"); })) return 0;
  const auto path = fuzz::scratch_dir() / "set.bin";
  fuzz::write_file(path, bytes);
  proto::DataSourceParameter p;
  p.set_source("bin:" + path.string());
  p.set_threads(0);
  fuzz::expect_clean([&] {
    const auto src = open_data_source(p, "", 1, "fuzz");
    if (shape_count(src->sample_shape()) > (1 << 20)) return;  // a header may claim 65535 x 65535
    const int64_t n = std::min<int64_t>(src->size(), 2);
    std::vector<float> x(static_cast<size_t>(n * shape_count(src->sample_shape())));
    std::vector<int32_t> y(static_cast<size_t>(n));
    src->fill_range(0, n, x.data(), y.data());
  });
  return 0;
}
