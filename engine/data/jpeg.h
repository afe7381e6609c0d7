// JPEG decoding and encoding with libjpeg-turbo (Debian's libjpeg62-turbo).
//
// Why: face packages store each aligned face as a JPEG, and decoding is the
// reader's main CPU cost. libjpeg-turbo's SIMD decoder is the standard fast one;
// its libjpeg API is used (not TurboJPEG) because Debian ships it everywhere.
// Errors from libjpeg (which would call exit() by default) become coco::Error
// naming `where` (a file and byte offset) and libjpeg's own message.
// Output is always 3 channels, RGB, interleaved: (height, width, 3) bytes;
// grey JPEGs are expanded to RGB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace coco {

struct ImageU8 {
  int height = 0, width = 0;  // 3 channels, RGB, (height, width, 3)
  std::vector<uint8_t> pixels;
};

// Reads only the header: height and width. Throws on a non-JPEG.
void jpeg_dimensions(const uint8_t* data, size_t bytes, const std::string& where, int* height, int* width);
// Decodes into `out` (its buffer is reused across calls). With expect_height and
// expect_width, an image of another size is an error before anything is allocated:
// a corrupt header may claim 65535 x 65535 (12 GB decoded).
void decode_jpeg(const uint8_t* data, size_t bytes, const std::string& where, ImageU8* out,
                 int expect_height = 0, int expect_width = 0);
// Encodes (height, width, 3) RGB bytes at `quality` (1..100); for coco-pack's tests and the benchmark.
std::vector<uint8_t> encode_jpeg(const uint8_t* rgb, int height, int width, int quality = 90);

}  // namespace coco
