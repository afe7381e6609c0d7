// NumPy .npy files (format version 1.0), for the embeddings and labels that
// coco-export writes and coco-eval reads.
//
// Why our own: the format is tiny and fixed, and a dependency for it would be the
// only one. Layout (NumPy's "format.rst"): the 6 bytes "\x93NUMPY", version 1.0
// (two bytes), a little-endian uint16 header length, then an ASCII Python dict
//   {'descr': '<f4', 'fortran_order': False, 'shape': (N, D), }
// padded with spaces and ending in '\n' so that the data starts on a multiple of
// 64 bytes; the data follows, C order. We write '<f4' (float32) and '<i8' (int64)
// only, and read those two (plus a reader error for anything else). Files are
// written atomically (temp name, fsync, rename), like checkpoints.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace coco {

enum class NpyType { kFloat32, kInt64 };

struct NpyArray {
  NpyType type = NpyType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<float> f32;    // filled when type == kFloat32
  std::vector<int64_t> i64;  // filled when type == kInt64
  int64_t count() const;
};

// The header (magic through the '\n'), for `shape` and `type`; its size is a multiple of 64.
std::string npy_header(NpyType type, const std::vector<int64_t>& shape);

void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data);
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const int64_t* data);

// Reads a '<f4' or '<i8' C-order array; any other file is an error naming the file and
// the byte offset of the problem.
NpyArray read_npy(const std::string& path);

// Every value of a row-major float array with `cols` columns (read from `file`) is
// finite; else an error "FILE: row r, column c holds v; WHY" for the first one.
void require_finite(const std::vector<float>& values, int64_t cols, const std::string& file, const std::string& why);

}  // namespace coco
