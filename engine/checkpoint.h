// Checkpoints: every parameter, the solver state and the iteration, in one file.
//
// Layout: 8-byte magic "COCOCKPT", uint32 format version, uint64 payload length,
// uint64 FNV-1a hash of the payload, then the payload (a serialised proto::Checkpoint;
// its `net` is Caffe's binary NetParameter layout). A truncated or corrupt file is a
// clear error naming the file and what is wrong. Files are written atomically:
// temp name in the same folder, fsync, rename, fsync of the folder -- a crash leaves
// either the old file or the new one, never half of one.
#pragma once

#include <string>

#include "engine/net.h"
#include "engine/proto_fwd.h"

namespace coco {

void write_file_atomic(const std::string& path, const std::string& bytes);

void save_checkpoint(const std::string& path, const proto::Checkpoint& ckpt);
proto::Checkpoint load_checkpoint(const std::string& path);

// Initialises a net's parameters from a coco checkpoint or a Caffe .caffemodel
// (a binary NetParameter), matched by layer name.
void load_weights(Net& net, const std::string& path);

}  // namespace coco
