// coco-pack: packs JPEG faces into an insightface-style RecordIO package that the
// rec: data source reads with large sequential reads. Errors are caught once, here.
#include <cstdio>
#include <string>

#include "engine/cli.h"
#include "engine/common.h"
#include "engine/data/pack.h"
#include "engine/logging.h"

namespace {

using coco::UsageError;

const char* kUsage = R"(usage: coco-pack (--images DIR | --list FILE) --out PREFIX [options]

Packs JPEG images into PREFIX.rec, PREFIX.idx and PREFIX.property
("num_classes,height,width"), in the MXNet RecordIO layout of the insightface
MS1M packages, so a solver reads them with
  train_data { source: "rec:PREFIX" ... }
insightface's shared `property` beside them is written too when PREFIX's name is
"train" or there is none yet, so packing a second split keeps the first's.
The files are written aside and renamed into place at the end: a pack that fails
leaves an earlier package under PREFIX as it was.
The JPEG bytes are stored unchanged; all images must have the same size.

  --images DIR           one sub-folder per identity: DIR/<identity>/*.jpg;
                         identities sorted by name get labels 0, 1, ...
  --list FILE            "path label" per line (paths relative to FILE's
                         folder; '#' starts a comment line)
  --out PREFIX           output prefix, e.g. data/faces/train
  --plain                plain records with keys 0..N-1 (no identity header
                         or identity records, as MXNet's im2rec)
  --no-verify            skip reading the package back (by default every
                         record is compared with its file, bit for bit)
  -h, --help             this text
)";

}  // namespace

int main(int argc, char** argv) {
  std::string images, list, out;
  bool verify = true;
  coco::PackLayout layout = coco::PackLayout::kInsightface;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&] { return coco::flag_value(argc, argv, i, a); };
      if (a == "-h" || a == "--help") {
        std::fputs(kUsage, stdout);
        return 0;
      } else if (a == "--images") {
        images = value();
      } else if (a == "--list") {
        list = value();
      } else if (a == "--out") {
        out = value();
      } else if (a == "--plain") {
        layout = coco::PackLayout::kPlain;
      } else if (a == "--no-verify") {
        verify = false;
      } else {
        throw UsageError{"unknown option '" + a + "'"};
      }
    }
    if (images.empty() == list.empty()) throw UsageError{"give exactly one of --images DIR and --list FILE"};
    if (out.empty()) throw UsageError{"--out PREFIX is required"};
  } catch (const UsageError& e) {
    std::fprintf(stderr, "coco-pack: %s\n\n%s", e.msg.c_str(), kUsage);
    return 2;
  }

  coco::init_logging(0, 1);
  try {
    const auto items = images.empty() ? coco::pack_items_from_list(list) : coco::pack_items_from_folder(images);
    const auto r = coco::pack_records(items, out, layout);
    spdlog::info("wrote {}.rec ({} bytes), {}.idx, property: {} images, {} classes, {}x{}; {} split record parts",
                 out, r.bytes, out, r.images, r.classes, r.height, r.width, r.splits);
    if (verify) {
      coco::verify_pack(items, out, layout);
      spdlog::info("verified: every record reads back bit for bit");
    }
    return 0;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
