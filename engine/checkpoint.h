// Checkpoints: every parameter, the solver state and the iteration, in one file.
//
// Layout: 8-byte magic "COCOCKPT", uint32 format version, uint64 payload length,
// uint64 FNV-1a hash of the payload, then the payload (a serialised proto::Checkpoint;
// its `net` is Caffe's binary NetParameter layout). A truncated or corrupt file is a
// clear error naming the file and what is wrong. Files are written atomically:
// temp name in the same folder, fsync, rename, fsync of the folder -- a crash leaves
// either the old file or the new one, never half of one.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/net.h"
#include "engine/proto_fwd.h"

namespace coco {

void write_file_atomic(const std::string& path, const std::string& bytes);
// 64-bit FNV-1a of n bytes: the checkpoint header's payload hash, and run identities.
uint64_t fnv1a(const char* p, size_t n);
// The temporary name write_file_atomic writes `path` under: PATH.tmp-HOST-PID.
std::string partial_write_name(const std::string& path);
// Temporary files of interrupted writes (crash, kill, power cut) in `dir` whose
// names start with `name_prefix`: those of dead processes on this host are removed;
// one note per file found (for a warning). Others' files are left alone.
std::vector<std::string> clean_partial_writes(const std::string& dir, const std::string& name_prefix);
// Creates `dir` if needed and checks that a file can be written there; throws
// naming the folder (`what`: "snapshot") otherwise. Run before hours of training.
void ensure_writable_folder(const std::string& dir, const std::string& what);

void save_checkpoint(const std::string& path, const proto::Checkpoint& ckpt);
proto::Checkpoint load_checkpoint(const std::string& path);
// Shard files: the same container with the magic "COCOSHRD".
void save_checkpoint_shard(const std::string& path, const proto::CheckpointShard& shard);
proto::CheckpointShard load_checkpoint_shard(const std::string& path);
std::string shard_path(const std::string& checkpoint, int rank, int num_shards);

// Initialises a net's parameters from a coco checkpoint (its shard files included)
// or a Caffe .caffemodel (a binary NetParameter), matched by layer name. A sharded
// parameter takes its own rows, whatever the rank count the file was saved with.
// A .caffemodel must match at least one layer, and every layer of the net with
// parameters that it does not hold must be named in `keep_fillers` (fine-tuning: a
// new head keeps its filler initialisation); anything else is an error naming the
// layers. Returns the names of the layers that were initialised from the file.
std::vector<std::string> load_weights(Net& net, const std::string& path,
                                      const std::vector<std::string>& keep_fillers = {});

// Copies this rank's rows of every sharded parameter of `net` (and, if
// `history_of` is given, their momentum) from the shard files of checkpoint `ckpt`
// saved at `path`, reading only the files whose rows overlap.
void load_sharded_rows(Net& net, const proto::Checkpoint& ckpt, const std::string& path,
                       const std::function<Tensor*(size_t)>& history_of);

}  // namespace coco
