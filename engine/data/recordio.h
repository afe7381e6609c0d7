// MXNet RecordIO: the container of the MS1M / insightface face packages
// (train.rec + train.idx + property).
//
// Why it looks like this: the format is fixed by the packages users already
// have, so this file follows dmlc-core's writer and reader exactly.
//
//   record  = part+                  one logical record, split where the magic
//   part    = magic:u32le  lrec:u32le  bytes[len]  zero-pad to 4 bytes
//   lrec    = cflag << 29 | len      cflag 0 whole, 1 start, 2 middle, 3 end
//
// The writer scans the payload at 4-byte-aligned offsets; wherever the magic
// appears it ends the current part there and drops the 4 magic bytes, and the
// reader puts them back between parts. A payload (MXNet's IRHeader) is:
//
//   flag:u32  label:f32  id:u64  id2:u64  [flag x f32 labels if flag > 0]  body
//
// .idx is text, "key\toffset" per line (offset of the record's first part).
// Insightface's convention: record 0 has flag 2 and labels [id_start, id_end);
// image records are keys 1 .. id_start-1; keys id_start .. id_end-1 hold one
// identity each, with labels [first image key, last image key + 1).
// `property` is the text "num_classes,height,width".
//
// Every malformed thing is a coco::Error naming the file and the byte offset.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace coco {

constexpr uint32_t kRecordMagic = 0xced7230a;
constexpr uint32_t kRecordMaxLength = (1u << 29) - 1;
constexpr size_t kRecordHeaderBytes = 24;  // MXNet IRHeader

// The IRHeader at the front of each payload. `labels` holds the flag > 0 labels.
struct RecordHeader {
  uint32_t flag = 0;
  float label = 0;
  uint64_t id = 0, id2 = 0;
  std::vector<float> labels;
  // The class label of an image record as float32: labels[0] when present, else label.
  float class_label() const { return labels.empty() ? label : labels[0]; }
  // The class id: exact from id2 where coco-pack tagged it there (float32 labels
  // are exact only to 2^24; insightface's own files leave id2 0), else class_label().
  double class_id() const;
  // Tags id2 with an exact class id (coco-pack's image records).
  void set_class_id(int64_t id);
};

// The tag in id2's high 32 bits that marks its low 32 as the class id ("COCO").
constexpr uint64_t kClassIdTag = uint64_t{0x434F434F} << 32;

// header + labels + body, as MXNet's recordio.pack (flag is set from labels).
std::string pack_payload(RecordHeader header, const void* body, size_t body_bytes);

// A parsed payload; body points into the buffer given to parse_payload.
struct PayloadView {
  RecordHeader header;
  const uint8_t* body = nullptr;
  size_t body_bytes = 0;
};
// `where` names the record in errors ("train.rec: record at byte 1234").
PayloadView parse_payload(const uint8_t* data, size_t bytes, const std::string& where);

// Appends records to a .rec file (and, with write_index, key/offset lines to .idx).
class RecordWriter {
 public:
  explicit RecordWriter(const std::string& rec_path);
  ~RecordWriter();
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;
  // Writes one logical record; returns its byte offset. Splits at the magic.
  uint64_t write(const void* payload, size_t bytes);
  uint64_t offset() const { return offset_; }
  // Number of extra parts written because the magic appeared in payloads.
  int64_t splits() const { return splits_; }
  void close();  // flushes and checks; the destructor closes silently

 private:
  void put(const void* p, size_t n);
  std::string path_;
  FILE* f_ = nullptr;
  uint64_t offset_ = 0;
  int64_t splits_ = 0;
};

// Decodes the record starting at data[0] (file byte `offset`) from a buffer of
// `avail` bytes. Returns the bytes the record spans (parts and padding), or 0 if
// the buffer ends inside it (the caller reads more, or reports truncation).
// Throws on a bad magic or an impossible continuation flag.
size_t decode_record(const uint8_t* data, size_t avail, uint64_t offset, const std::string& file,
                     std::string* payload);

// Random-access reads of a .rec file (pread: safe from several threads).
class RecordFile {
 public:
  explicit RecordFile(const std::string& path);
  ~RecordFile();
  RecordFile(const RecordFile&) = delete;
  RecordFile& operator=(const RecordFile&) = delete;
  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  // Reads bytes [offset, offset + n) (n clipped at the end of the file).
  std::vector<uint8_t> read_bytes(uint64_t offset, size_t n) const;
  // The record at `offset`; `hint` is how many bytes to read in the first go.
  std::string read_record(uint64_t offset, size_t hint = 64 << 10) const;
  // Decodes the record at `offset` out of `chunk` (file bytes from chunk_offset),
  // falling back to a direct read when the record runs past the chunk's end.
  std::string record_in_chunk(const std::vector<uint8_t>& chunk, uint64_t chunk_offset, uint64_t offset) const;
  // Every record in file order, as (offset, payload): for tests and tools.
  std::vector<std::pair<uint64_t, std::string>> read_all() const;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// A parsed .idx: (key, offset) in file order. Errors name the line.
std::vector<std::pair<uint64_t, uint64_t>> read_record_index(const std::string& idx_path);
void write_record_index(const std::string& idx_path, const std::vector<std::pair<uint64_t, uint64_t>>& entries);

struct RecordProperty {
  int64_t num_classes = 0, height = 0, width = 0;
};
RecordProperty read_record_property(const std::string& path);
void write_record_property(const std::string& path, const RecordProperty& p);

}  // namespace coco
