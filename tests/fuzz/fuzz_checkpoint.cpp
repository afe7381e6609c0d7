// libFuzzer target: coco's checkpoint loader (engine/checkpoint.*,
// engine/training_checkpoint.*).
//
// Input: parts (fuzz_common.h): the main file, then N shard files, written as
// ck.ckpt and ck.ckpt.shard-I-of-N beside it (the names a run on N ranks writes).
// The main file is read as a checkpoint, each shard as a shard, and then both ways a
// run uses them on fuzz_net.h's net: --resume (parameters, momentum, sharded rows
// re-sharded onto this rank) and --weights.
//
// The container's FNV-1a hash would stop almost every mutation of the payload at
// the hash check, so a part whose header hash field is 0 gets its length and hash
// filled in here (the corpus has such "fixup_*" seeds); a part with any other hash
// is written as it is, which fuzzes the container checks themselves.
#include <cstring>
#include <filesystem>

#include "engine/checkpoint.h"
#include "engine/training_checkpoint.h"
#include "tests/fuzz/fuzz_common.h"
#include "tests/fuzz/fuzz_net.h"

namespace {
coco::fuzz::FuzzNet* g_net = nullptr;

constexpr size_t kHeader = 8 + 4 + 8 + 8;  // magic, version, length, hash

void fix_up_header(std::string* part) {
  if (part->size() < kHeader || (part->compare(0, 8, "COCOCKPT") != 0 && part->compare(0, 8, "COCOSHRD") != 0)) return;
  uint64_t hash = 0;
  std::memcpy(&hash, part->data() + 20, 8);
  if (hash != 0) return;
  const uint64_t len = part->size() - kHeader;
  hash = 1469598103934665603ull;
  for (size_t i = kHeader; i < part->size(); ++i) {
    hash ^= static_cast<unsigned char>((*part)[i]);
    hash *= 1099511628211ull;
  }
  std::memcpy(&(*part)[12], &len, 8);
  std::memcpy(&(*part)[20], &hash, 8);
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  coco::fuzz::init_quiet();
  g_net = new coco::fuzz::FuzzNet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coco;
  auto parts = fuzz::split_parts(data, size);
  for (auto& p : parts) fix_up_header(&p);
  const auto dir = fuzz::scratch_dir() / "ck";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "ck.ckpt").string();
  fuzz::write_file(path, parts[0]);
  const int shards = static_cast<int>(parts.size()) - 1;
  for (int s = 0; s < shards; ++s) {
    const std::string sp = shard_path(path, s, shards);
    fuzz::write_file(sp, parts[static_cast<size_t>(s) + 1]);
    fuzz::expect_clean([&] { (void)load_checkpoint_shard(sp); });
  }
  fuzz::expect_clean([&] { (void)load_checkpoint(path); });
  fuzz::expect_clean([&] { (void)load_training_checkpoint(path, *g_net->net, *g_net->solver); });
  fuzz::expect_clean([&] { load_weights(*g_net->net, path); });
  return 0;
}
