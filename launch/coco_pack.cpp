// coco-pack: packs JPEG faces into an insightface-style RecordIO package that the
// rec: data source reads with large sequential reads. Errors are caught once, here.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

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
Each record holds its label as float32 (insightface's header) and the exact
class id in the header's id2, so labels up to 2147483646 read back exactly.
)";

}  // namespace

int main(int argc, char** argv) {
  std::string images, list, out;
  bool verify = true;
  coco::PackLayout layout = coco::PackLayout::kInsightface;
  CLI::App app{"", "coco-pack"};
  coco::describe_tool(app, kUsage);
  app.add_option("--images", images,
                 "one sub-folder per identity: DIR/<identity>/*.jpg;\nidentities sorted by name get labels 0, 1, ...")
      ->type_name("DIR");
  app.add_option("--list", list,
                 "\"path label\" per line (paths relative to FILE's\nfolder; '#' starts a comment line)")
      ->type_name("FILE");
  app.add_option("--out", out, "output prefix, e.g. data/faces/train")->type_name("PREFIX")->required();
  app.add_flag_callback("--plain", [&layout] { layout = coco::PackLayout::kPlain; },
                        "plain records with keys 0..N-1 (no identity header\nor identity records, as MXNet's im2rec)");
  app.add_flag_callback("--no-verify", [&verify] { verify = false; },
                        "skip reading the package back (by default every\nrecord is compared with its file, bit for bit)");
  const auto check = [&] {
    if (images.empty() == list.empty()) throw UsageError{"give exactly one of --images DIR and --list FILE"};
  };
  if (const auto rc = coco::parse_flags(app, argc, argv, check)) return *rc;

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
