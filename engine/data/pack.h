// Packing images into an insightface-style RecordIO package (coco-pack).
//
// Why: users with an image folder or a list file get the same fast sequential
// reader as users of the MS1M packages. The layout is what insightface writes
// and what rec: reads: PREFIX.rec, PREFIX.idx, and `property` beside them (plus
// PREFIX.property, this split's own, which rec: prefers);
// record 0 is the identity-range header, image records are keys 1..N (grouped by
// label, label order), keys N+1..N+K hold each identity's image-key range. The
// JPEG bytes are stored unchanged, so reading back gives the file bit for bit.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace coco {

struct PackItem {
  std::string path;  // a JPEG file
  int64_t label = 0;
  std::string where;  // for errors: "list.txt:3" or the path
};

// DIR/<identity>/<images>: identities sorted by name get labels 0, 1, ...;
// images sorted by name within each.
std::vector<PackItem> pack_items_from_folder(const std::string& dir);
// "path label" per line (relative paths resolved against the list's folder).
std::vector<PackItem> pack_items_from_list(const std::string& list);

enum class PackLayout { kInsightface, kPlain };  // plain: keys 0..N-1, images only

struct PackResult {
  int64_t images = 0, classes = 0, height = 0, width = 0, splits = 0;
  uint64_t bytes = 0;
};

// Writes PREFIX.rec, PREFIX.idx, PREFIX.property and dirname(PREFIX)/property (the
// last only for a "train" prefix or where there is none), aside and then renamed, so
// a failure leaves an earlier package intact. Every image must
// be a JPEG of the first one's size. Items are stably sorted by label.
PackResult pack_records(std::vector<PackItem> items, const std::string& prefix, PackLayout layout);

// Reads the package back and checks every record against its source file bit for
// bit (and its label); throws naming the first difference.
void verify_pack(const std::vector<PackItem>& items, const std::string& prefix, PackLayout layout);

}  // namespace coco
