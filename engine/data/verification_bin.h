// insightface's verification sets (lfw.bin, cfp_fp.bin, agedb_30.bin, ...): a Python
// pickle of the tuple (bins, issame_list). bins holds each image file's encoded bytes
// (JPEG); pair i is images 2i and 2i+1, and issame_list[i] says whether they show the
// same person.
//
// Why a reader of our own: no C++ pickle library is packaged in Debian, and these files
// use a handful of opcodes. The reader is a strict machine for exactly this shape, as
// the files in the wild were written:
//   * Python 2 (protocol 2, or 1): images as str, i.e. SHORT_BINSTRING / BINSTRING;
//   * Python 3, protocol 3-5: images as bytes (SHORT_BINBYTES / BINBYTES / BINBYTES8),
//     protocol 4-5 framed (FRAME) and memoised with MEMOIZE;
//   * Python 3, protocol 2: bytes have no opcode there, so each image is written as
//     _codecs.encode(<text>, 'latin1') (GLOBAL, a unicode string, REDUCE);
// with the lists built by EMPTY_LIST / MARK / APPENDS (or APPEND), booleans as
// NEWTRUE / NEWFALSE (protocol 1: INT 01 / 00), memo puts and gets, and the pair
// as TUPLE2 or MARK ... TUPLE. Anything else (another global, a numpy array, a
// different shape) is an error naming the file and the byte offset.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace coco {

struct VerificationBin {
  std::vector<std::string> images;  // encoded image files, in file order
  std::vector<bool> issame;         // issame[i]: images 2i and 2i+1 show one person
  int64_t pairs() const { return static_cast<int64_t>(issame.size()); }
};

// Parses the pickle in `bytes`; errors name `name` (the file) and the byte offset.
VerificationBin parse_verification_bin(const std::string& bytes, const std::string& name);

// Reads and parses a .bin file.
VerificationBin read_verification_bin(const std::string& path);

}  // namespace coco
