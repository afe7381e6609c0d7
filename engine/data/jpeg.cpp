// libjpeg-turbo decode/encode; see jpeg.h.
#include "engine/data/jpeg.h"

#include <jpeglib.h>

#include <csetjmp>
#include <cstdio>

#include "engine/common.h"

namespace coco {

namespace {

// libjpeg reports errors through error_exit, which must not return: jump back
// to the setjmp point, keeping the message, and throw from ordinary C++ code.
struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}
void on_message(j_common_ptr) {}  // warnings (e.g. extraneous bytes) are not errors

struct Decompressor {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  Decompressor() {
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error;
    err.pub.output_message = on_message;
    err.message[0] = 0;
    jpeg_create_decompress(&cinfo);
  }
  ~Decompressor() { jpeg_destroy_decompress(&cinfo); }
};

}  // namespace

void jpeg_dimensions(const uint8_t* data, size_t bytes, const std::string& where, int* height, int* width) {
  Decompressor d;
  if (setjmp(d.err.jump)) COCO_THROW(where, ": not a readable JPEG: ", d.err.message);
  jpeg_mem_src(&d.cinfo, data, static_cast<unsigned long>(bytes));
  jpeg_read_header(&d.cinfo, TRUE);
  *height = static_cast<int>(d.cinfo.image_height);
  *width = static_cast<int>(d.cinfo.image_width);
}

void decode_jpeg(const uint8_t* data, size_t bytes, const std::string& where, ImageU8* out, int expect_height,
                 int expect_width) {
  Decompressor d;
  if (setjmp(d.err.jump)) COCO_THROW(where, ": JPEG decoding failed: ", d.err.message);
  if (bytes == 0) COCO_THROW(where, ": empty image");
  jpeg_mem_src(&d.cinfo, data, static_cast<unsigned long>(bytes));
  jpeg_read_header(&d.cinfo, TRUE);
  if (expect_height > 0 && (static_cast<int64_t>(d.cinfo.image_height) != expect_height ||
                            static_cast<int64_t>(d.cinfo.image_width) != expect_width))
    COCO_THROW(where, ": image is ", d.cinfo.image_height, "x", d.cinfo.image_width, ", expected ", expect_height, "x",
               expect_width, " like the rest of the source");
  d.cinfo.out_color_space = JCS_RGB;
  d.cinfo.dct_method = JDCT_ISLOW;  // exact and SIMD-accelerated in libjpeg-turbo
  jpeg_start_decompress(&d.cinfo);
  const int h = static_cast<int>(d.cinfo.output_height), w = static_cast<int>(d.cinfo.output_width);
  if (d.cinfo.output_components != 3) COCO_THROW(where, ": JPEG decodes to ", d.cinfo.output_components, " channels, not 3");
  out->height = h;
  out->width = w;
  out->pixels.resize(static_cast<size_t>(h) * w * 3);
  while (d.cinfo.output_scanline < d.cinfo.output_height) {
    JSAMPROW row = out->pixels.data() + static_cast<size_t>(d.cinfo.output_scanline) * w * 3;
    jpeg_read_scanlines(&d.cinfo, &row, 1);
  }
  jpeg_finish_decompress(&d.cinfo);
}

std::vector<uint8_t> encode_jpeg(const uint8_t* rgb, int height, int width, int quality) {
  jpeg_compress_struct cinfo;
  ErrorManager err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.output_message = on_message;
  unsigned char* mem = nullptr;
  unsigned long mem_size = 0;
  jpeg_create_compress(&cinfo);
  if (setjmp(err.jump)) {
    jpeg_destroy_compress(&cinfo);
    std::free(mem);
    COCO_THROW("JPEG encoding failed: ", err.message);
  }
  jpeg_mem_dest(&cinfo, &mem, &mem_size);
  cinfo.image_width = static_cast<JDIMENSION>(width);
  cinfo.image_height = static_cast<JDIMENSION>(height);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(rgb) + static_cast<size_t>(cinfo.next_scanline) * width * 3;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::vector<uint8_t> out(mem, mem + mem_size);
  jpeg_destroy_compress(&cinfo);
  std::free(mem);
  return out;
}

}  // namespace coco
