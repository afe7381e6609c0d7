// MXNet RecordIO reader and writer: see recordio.h for the format.
#include "engine/data/recordio.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "engine/common.h"

namespace coco {

namespace {

uint32_t load_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
uint64_t load_u64(const uint8_t* p) { return static_cast<uint64_t>(load_u32(p)) | static_cast<uint64_t>(load_u32(p + 4)) << 32; }
float load_f32(const uint8_t* p) {
  const uint32_t u = load_u32(p);
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
void store_u32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void store_u64(std::string* s, uint64_t v) {
  store_u32(s, static_cast<uint32_t>(v));
  store_u32(s, static_cast<uint32_t>(v >> 32));
}
void store_f32(std::string* s, float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  store_u32(s, u);
}
const uint8_t kMagicBytes[4] = {0x0a, 0x23, 0xd7, 0xce};  // kRecordMagic, little-endian

std::string hex32(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

}  // namespace

double RecordHeader::class_id() const {
  if ((id2 & ~uint64_t{0xFFFFFFFF}) == kClassIdTag) return static_cast<double>(id2 & 0xFFFFFFFF);
  return class_label();
}

void RecordHeader::set_class_id(int64_t class_id) {
  COCO_CHECK(class_id >= 0 && class_id <= 0xFFFFFFFF, "RecordHeader::set_class_id: ", class_id, " is out of range");
  id2 = kClassIdTag | static_cast<uint64_t>(class_id);
  label = static_cast<float>(class_id);  // the nearest float, for readers that know only label
}

std::string pack_payload(RecordHeader header, const void* body, size_t body_bytes) {
  std::string s;
  s.reserve(kRecordHeaderBytes + 4 * header.labels.size() + body_bytes);
  if (!header.labels.empty()) {
    header.flag = static_cast<uint32_t>(header.labels.size());
    header.label = 0;
  } else {
    header.flag = 0;
  }
  store_u32(&s, header.flag);
  store_f32(&s, header.label);
  store_u64(&s, header.id);
  store_u64(&s, header.id2);
  for (float l : header.labels) store_f32(&s, l);
  s.append(static_cast<const char*>(body), body_bytes);
  return s;
}

PayloadView parse_payload(const uint8_t* data, size_t bytes, const std::string& where) {
  if (bytes < kRecordHeaderBytes)
    COCO_THROW(where, ": payload of ", bytes, " bytes is shorter than the ", kRecordHeaderBytes, "-byte header");
  PayloadView v;
  v.header.flag = load_u32(data);
  v.header.label = load_f32(data + 4);
  v.header.id = load_u64(data + 8);
  v.header.id2 = load_u64(data + 16);
  const uint64_t label_bytes = 4ull * v.header.flag;
  if (kRecordHeaderBytes + label_bytes > bytes)
    COCO_THROW(where, ": header says ", v.header.flag, " labels (", label_bytes, " bytes) but the payload holds only ",
               bytes - kRecordHeaderBytes, " bytes after the header");
  v.header.labels.resize(v.header.flag);
  for (uint32_t i = 0; i < v.header.flag; ++i) v.header.labels[i] = load_f32(data + kRecordHeaderBytes + 4 * i);
  v.body = data + kRecordHeaderBytes + label_bytes;
  v.body_bytes = bytes - kRecordHeaderBytes - label_bytes;
  return v;
}

// ---- writer ----

RecordWriter::RecordWriter(const std::string& rec_path) : path_(rec_path) {
  f_ = std::fopen(rec_path.c_str(), "wb");
  if (!f_) COCO_THROW(rec_path, ": cannot open for writing: ", std::strerror(errno));
}

RecordWriter::~RecordWriter() {
  if (f_) std::fclose(f_);
}

void RecordWriter::put(const void* p, size_t n) {
  if (n == 0) return;
  if (std::fwrite(p, 1, n, f_) != n) COCO_THROW(path_, ": write failed at byte ", offset_, ": ", std::strerror(errno));
  offset_ += n;
}

uint64_t RecordWriter::write(const void* payload, size_t bytes) {
  COCO_CHECK(f_, path_, " is closed");
  if (bytes > kRecordMaxLength) COCO_THROW(path_, ": a record of ", bytes, " bytes exceeds RecordIO's 2^29-1 limit");
  const uint64_t start = offset_;
  const auto* b = static_cast<const uint8_t*>(payload);
  const uint32_t len = static_cast<uint32_t>(bytes);
  const uint32_t lower = len & ~3u;
  uint32_t done = 0;  // payload bytes consumed so far (parts written + dropped magics)
  auto part = [&](uint32_t cflag, uint32_t from, uint32_t n) {
    uint8_t head[8];
    std::memcpy(head, kMagicBytes, 4);
    const uint32_t lrec = cflag << 29 | n;
    for (int i = 0; i < 4; ++i) head[4 + i] = static_cast<uint8_t>(lrec >> (8 * i));
    put(head, 8);
    put(b + from, n);
  };
  for (uint32_t i = 0; i < lower; i += 4) {
    if (std::memcmp(b + i, kMagicBytes, 4) == 0) {
      part(done == 0 ? 1u : 2u, done, i - done);
      done = i + 4;
      ++splits_;
    }
  }
  part(done != 0 ? 3u : 0u, done, len - done);
  const uint32_t pad = ((len + 3u) & ~3u) - len;
  const uint8_t zeros[4] = {0, 0, 0, 0};
  put(zeros, pad);
  return start;
}

void RecordWriter::close() {
  if (!f_) return;
  const bool ok = std::fflush(f_) == 0 && ::fsync(fileno(f_)) == 0;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!ok || !closed) COCO_THROW(path_, ": closing failed: ", std::strerror(errno));
}

// ---- reader ----

size_t decode_record(const uint8_t* data, size_t avail, uint64_t offset, const std::string& file,
                     std::string* payload) {
  payload->clear();
  size_t pos = 0;
  bool first = true;
  for (;;) {
    if (avail - pos < 8) return 0;
    const uint32_t magic = load_u32(data + pos);
    if (magic != kRecordMagic)
      COCO_THROW(file, ": byte ", offset + pos, ": bad record magic ", hex32(magic), " (expected ",
                 hex32(kRecordMagic), ")", first ? "" : " inside a split record that started at byte ",
                 first ? std::string() : std::to_string(offset));
    const uint32_t lrec = load_u32(data + pos + 4);
    const uint32_t cflag = lrec >> 29, len = lrec & kRecordMaxLength;
    if (first && (cflag == 2 || cflag == 3))
      COCO_THROW(file, ": byte ", offset + pos, ": record begins with continuation flag ", cflag,
                 " (a middle or end part); the offset does not start a record");
    if (!first && (cflag == 0 || cflag == 1))
      COCO_THROW(file, ": byte ", offset + pos, ": split record that started at byte ", offset,
                 " is followed by a new record (flag ", cflag, ") before its end part");
    const size_t padded = (static_cast<size_t>(len) + 3) & ~static_cast<size_t>(3);
    if (avail - pos - 8 < padded) return 0;
    payload->append(reinterpret_cast<const char*>(data + pos + 8), len);
    pos += 8 + padded;
    if (cflag == 0 || cflag == 3) return pos;
    payload->append(reinterpret_cast<const char*>(kMagicBytes), 4);
    first = false;
  }
}

RecordFile::RecordFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) COCO_THROW(path, ": cannot open: ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd_, &st) != 0) COCO_THROW(path, ": cannot stat: ", std::strerror(errno));
  size_ = static_cast<uint64_t>(st.st_size);
#ifdef POSIX_FADV_SEQUENTIAL
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
}

RecordFile::~RecordFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<uint8_t> RecordFile::read_bytes(uint64_t offset, size_t n) const {
  if (offset >= size_) return {};
  n = static_cast<size_t>(std::min<uint64_t>(n, size_ - offset));
  std::vector<uint8_t> buf(n);
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd_, buf.data() + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) COCO_THROW(path_, ": read failed at byte ", offset + got, ": ", r < 0 ? std::strerror(errno) : "end of file");
    got += static_cast<size_t>(r);
  }
  return buf;
}

std::string RecordFile::read_record(uint64_t offset, size_t hint) const {
  if (offset >= size_) COCO_THROW(path_, ": byte ", offset, ": record offset is past the end of the file (", size_, " bytes)");
  std::string payload;
  size_t want = std::max<size_t>(hint, 64);
  for (;;) {
    const std::vector<uint8_t> buf = read_bytes(offset, want);
    const size_t used = decode_record(buf.data(), buf.size(), offset, path_, &payload);
    if (used > 0) return payload;
    if (offset + buf.size() >= size_)
      COCO_THROW(path_, ": byte ", offset, ": record is truncated: the file ends at byte ", size_,
                 " before the record does");
    want *= 4;
  }
}

std::string RecordFile::record_in_chunk(const std::vector<uint8_t>& chunk, uint64_t chunk_offset,
                                        uint64_t offset) const {
  if (offset >= chunk_offset && offset < chunk_offset + chunk.size()) {
    std::string payload;
    const size_t at = static_cast<size_t>(offset - chunk_offset);
    if (decode_record(chunk.data() + at, chunk.size() - at, offset, path_, &payload) > 0) return payload;
  }
  return read_record(offset);
}

std::vector<std::pair<uint64_t, std::string>> RecordFile::read_all() const {
  std::vector<std::pair<uint64_t, std::string>> out;
  const std::vector<uint8_t> all = read_bytes(0, static_cast<size_t>(size_));
  size_t pos = 0;
  while (pos < all.size()) {
    std::string payload;
    const size_t used = decode_record(all.data() + pos, all.size() - pos, pos, path_, &payload);
    if (used == 0)
      COCO_THROW(path_, ": byte ", pos, ": record is truncated: the file ends at byte ", size_, " before the record does");
    out.emplace_back(pos, std::move(payload));
    pos += used;
  }
  return out;
}

// ---- .idx and property ----

std::vector<std::pair<uint64_t, uint64_t>> read_record_index(const std::string& idx_path) {
  std::ifstream f(idx_path);
  if (!f) COCO_THROW(idx_path, ": cannot open the record index");
  std::vector<std::pair<uint64_t, uint64_t>> out;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::istringstream is(line);
    long long key = -1, off = -1;
    std::string rest;
    if (!(is >> key >> off) || key < 0 || off < 0 || (is >> rest))
      COCO_THROW(idx_path, ":", lineno, ": expected 'key<TAB>offset' with two non-negative integers, found '", line, "'");
    out.emplace_back(static_cast<uint64_t>(key), static_cast<uint64_t>(off));
  }
  if (out.empty()) COCO_THROW(idx_path, ": the record index is empty");
  return out;
}

void write_record_index(const std::string& idx_path, const std::vector<std::pair<uint64_t, uint64_t>>& entries) {
  std::ofstream f(idx_path, std::ios::trunc);
  if (!f) COCO_THROW(idx_path, ": cannot open for writing");
  for (const auto& [k, o] : entries) f << k << '\t' << o << '\n';
  f.close();
  if (!f) COCO_THROW(idx_path, ": write failed");
}

RecordProperty read_record_property(const std::string& path) {
  std::ifstream f(path);
  if (!f) COCO_THROW(path, ": cannot open the property file");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  RecordProperty p;
  char c1 = 0, c2 = 0;
  std::istringstream is(text);
  std::string rest;
  if (!(is >> p.num_classes >> c1 >> p.height >> c2 >> p.width) || c1 != ',' || c2 != ',' || (is >> rest) ||
      p.num_classes <= 0 || p.height <= 0 || p.width <= 0)
    COCO_THROW(path, ": expected 'num_classes,height,width' with positive integers, found '", text, "'");
  if (p.height > 65535 || p.width > 65535)
    COCO_THROW(path, ": image size ", p.height, "x", p.width, " is larger than a JPEG can be (65535)");
  return p;
}

void write_record_property(const std::string& path, const RecordProperty& p) {
  std::ofstream f(path, std::ios::trunc);
  if (!f) COCO_THROW(path, ": cannot open for writing");
  f << p.num_classes << ',' << p.height << ',' << p.width << '\n';
  f.close();
  if (!f) COCO_THROW(path, ": write failed");
}

}  // namespace coco
