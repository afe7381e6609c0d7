#include "tools/embed/npy.h"

#include <cmath>
#include <cctype>
#include <cstring>
#include <fstream>

#include "engine/checkpoint.h"
#include "engine/common.h"

namespace coco {

namespace {

const char kMagic[] = "\x93NUMPY";  // 6 bytes
constexpr size_t kPreamble = 10;    // magic, version (2), header length (2)

const char* descr_of(NpyType t) { return t == NpyType::kFloat32 ? "<f4" : "<i8"; }

std::string shape_tuple(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) s += ",";
    if (i + 1 < shape.size()) s += " ";
  }
  return s + ")";
}

int64_t product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void write_array(const std::string& path, NpyType type, const std::vector<int64_t>& shape, const void* data,
                 size_t elem) {
  for (int64_t d : shape)
    if (d < 0) COCO_THROW(path, ": negative dimension in shape ", shape_tuple(shape));
  std::string bytes = npy_header(type, shape);
  const size_t n = static_cast<size_t>(product(shape)) * elem;
  bytes.append(static_cast<const char*>(data), n);  // x86/ARM hosts are little-endian, as '<' says
  write_file_atomic(path, bytes);
}

// A cursor over the header dict, for errors that name the byte offset.
struct HeaderParser {
  const std::string& path;
  const std::string& h;
  size_t base;  // file offset of h[0]
  size_t pos = 0;

  [[noreturn]] void fail(const std::string& what) const {
    COCO_THROW(path, ": bad .npy header at byte ", base + pos, ": ", what);
  }
  void skip_ws() {
    while (pos < h.size() && (h[pos] == ' ' || h[pos] == '\t')) ++pos;
  }
  void expect(char c) {
    skip_ws();
    if (pos >= h.size() || h[pos] != c) fail(std::string("expected '") + c + "'");
    ++pos;
  }
  bool peek(char c) {
    skip_ws();
    return pos < h.size() && h[pos] == c;
  }
  std::string quoted() {
    skip_ws();
    if (pos >= h.size() || (h[pos] != '\'' && h[pos] != '"')) fail("expected a quoted string");
    const char q = h[pos++];
    const size_t end = h.find(q, pos);
    if (end == std::string::npos) fail("unterminated string");
    std::string s = h.substr(pos, end - pos);
    pos = end + 1;
    return s;
  }
  std::string word() {
    skip_ws();
    const size_t start = pos;
    while (pos < h.size() && std::isalnum(static_cast<unsigned char>(h[pos]))) ++pos;
    return h.substr(start, pos - start);
  }
  int64_t integer() {
    skip_ws();
    const size_t start = pos;
    while (pos < h.size() && std::isdigit(static_cast<unsigned char>(h[pos]))) ++pos;
    if (start == pos) fail("expected a non-negative integer");
    if (pos - start > 18) fail("dimension too large");
    return std::stoll(h.substr(start, pos - start));
  }
};

}  // namespace

int64_t NpyArray::count() const { return product(shape); }

std::string npy_header(NpyType type, const std::vector<int64_t>& shape) {
  std::string dict = std::string("{'descr': '") + descr_of(type) + "', 'fortran_order': False, 'shape': " +
                     shape_tuple(shape) + ", }";
  // Pad with spaces so that preamble + dict + '\n' is a multiple of 64 bytes.
  const size_t unpadded = kPreamble + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  if (dict.size() > 65535) COCO_THROW(".npy header too long for format 1.0 (shape ", shape_tuple(shape), ")");
  std::string out(kMagic, 6);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(dict.size() & 0xff);
  out += static_cast<char>(dict.size() >> 8);
  return out + dict;
}

void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  write_array(path, NpyType::kFloat32, shape, data, sizeof(float));
}

void write_npy(const std::string& path, const std::vector<int64_t>& shape, const int64_t* data) {
  write_array(path, NpyType::kInt64, shape, data, sizeof(int64_t));
}

NpyArray read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) COCO_THROW(path, ": cannot open");
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < kPreamble || bytes.compare(0, 6, kMagic, 6) != 0)
    COCO_THROW(path, ": not a .npy file (no \\x93NUMPY magic at byte 0)");
  const auto major = static_cast<unsigned char>(bytes[6]);
  if (major != 1)
    COCO_THROW(path, ": .npy format version ", int(major), ".", int(static_cast<unsigned char>(bytes[7])),
               " at byte 6; only 1.0 is read");
  const size_t hlen = static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
  if (bytes.size() < kPreamble + hlen)
    COCO_THROW(path, ": truncated: header of ", hlen, " bytes at byte 10, file has ", bytes.size(), " bytes");
  const std::string header = bytes.substr(kPreamble, hlen);
  HeaderParser p{path, header, kPreamble};

  NpyArray a;
  bool have_descr = false, have_order = false, have_shape = false;
  p.expect('{');
  while (!p.peek('}')) {
    const std::string key = p.quoted();
    p.expect(':');
    if (key == "descr") {
      const size_t at = p.pos;
      const std::string d = p.quoted();
      if (d == "<f4") {
        a.type = NpyType::kFloat32;
      } else if (d == "<i8") {
        a.type = NpyType::kInt64;
      } else {
        p.pos = at;
        p.fail("dtype '" + d + "' is not supported (only '<f4' and '<i8')");
      }
      have_descr = true;
    } else if (key == "fortran_order") {
      const size_t at = p.pos;
      const std::string w = p.word();
      if (w == "True") {
        p.pos = at;
        p.fail("Fortran-order arrays are not supported");
      }
      if (w != "False") p.fail("expected True or False");
      have_order = true;
    } else if (key == "shape") {
      p.expect('(');
      while (!p.peek(')')) {
        a.shape.push_back(p.integer());
        if (!p.peek(')')) p.expect(',');
      }
      p.expect(')');
      have_shape = true;
    } else {
      p.fail("unknown key '" + key + "'");
    }
    if (!p.peek('}')) p.expect(',');
  }
  if (!have_descr || !have_order || !have_shape) p.fail("the dict needs 'descr', 'fortran_order' and 'shape'");

  const size_t elem = a.type == NpyType::kFloat32 ? 4 : 8;
  const size_t n = static_cast<size_t>(a.count());
  const size_t have = bytes.size() - kPreamble - hlen;
  if (have != n * elem)
    COCO_THROW(path, ": data at byte ", kPreamble + hlen, " holds ", have, " bytes; shape ", shape_tuple(a.shape),
               " of ", elem, "-byte values needs ", n * elem);
  const char* src = bytes.data() + kPreamble + hlen;
  if (a.type == NpyType::kFloat32) {
    a.f32.resize(n);
    if (n > 0) std::memcpy(a.f32.data(), src, n * elem);  // an empty vector's data() may be null
  } else {
    a.i64.resize(n);
    if (n > 0) std::memcpy(a.i64.data(), src, n * elem);
  }
  return a;
}

void require_finite(const std::vector<float>& values, int64_t cols, const std::string& file, const std::string& why) {
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      COCO_THROW(file, ": row ", static_cast<int64_t>(i) / cols, ", column ", static_cast<int64_t>(i) % cols, " holds ",
                 values[i], "; ", why);
}

}  // namespace coco
