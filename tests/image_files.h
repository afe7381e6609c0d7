// Generated JPEG faces for the data tests: no binaries in the repository.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/data/jpeg.h"
#include "tests/test_files.h"

namespace coco::testing {

// A (h, w, 3) image whose pattern depends on `id` (smooth, so JPEG keeps it).
inline std::vector<uint8_t> synthetic_rgb(int h, int w, int id) {
  std::vector<uint8_t> px(static_cast<size_t>(h) * w * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        px[(static_cast<size_t>(y) * w + x) * 3 + c] =
            static_cast<uint8_t>((x * (3 + id % 5) + y * (2 + c) + id * 37 + c * 50 + (x > w / 2 ? 60 : 0)) % 256);
  return px;
}

inline std::vector<uint8_t> synthetic_jpeg(int h, int w, int id, int quality = 90) {
  const auto px = synthetic_rgb(h, w, id);
  return encode_jpeg(px.data(), h, w, quality);
}

// Inserts a JPEG comment (COM) segment right after SOI holding `text`: decoders
// skip it, so it is a way to put the RecordIO magic inside valid JPEG bytes.
inline std::vector<uint8_t> with_comment(const std::vector<uint8_t>& jpeg, const std::vector<uint8_t>& text) {
  std::vector<uint8_t> out(jpeg.begin(), jpeg.begin() + 2);
  const size_t len = text.size() + 2;
  out.push_back(0xFF);
  out.push_back(0xFE);
  out.push_back(static_cast<uint8_t>(len >> 8));
  out.push_back(static_cast<uint8_t>(len & 0xff));
  out.insert(out.end(), text.begin(), text.end());
  out.insert(out.end(), jpeg.begin() + 2, jpeg.end());
  return out;
}

// The RecordIO magic as it sits in a file, twice, after `lead` bytes (so the
// test can place it at a 4-byte-aligned payload offset).
inline std::vector<uint8_t> magic_text(size_t lead) {
  std::vector<uint8_t> t(lead, 'x');
  const uint8_t magic[4] = {0x0a, 0x23, 0xd7, 0xce};
  for (int r = 0; r < 8; ++r) t.push_back(magic[r % 4]);
  return t;
}

// DIR/id<k>/img<j>.jpg for k < ids, j < per_id; returns the images' bytes in that order.
inline std::vector<std::vector<uint8_t>> write_face_folder(const std::string& dir, int ids, int per_id, int h, int w) {
  std::vector<std::vector<uint8_t>> all;
  for (int k = 0; k < ids; ++k) {
    const std::string sub = dir + "/id" + std::to_string(100 + k);
    std::filesystem::create_directories(sub);
    for (int j = 0; j < per_id; ++j) {
      auto b = synthetic_jpeg(h, w, k * 1000 + j * 7);
      write_bytes(sub + "/img" + std::to_string(j) + ".jpg", b);
      all.push_back(std::move(b));
    }
  }
  return all;
}

}  // namespace coco::testing
