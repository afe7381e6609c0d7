// Which blob of a net is the embedding, and the part of the net that computes it:
// shared by coco-export (tools/embed/export.h) and the trainer's validation passes,
// so both embed with the same layers.
#pragma once

#include <cstdint>
#include <string>

#include "engine/proto_fwd.h"

namespace coco {

// The embedding before the head, for a net after phase filtering:
//   take the first bottom of the first loss layer (type ending in "Loss");
//   if that blob is written by a classifier (InnerProduct, CenterProjection), step to
//   the classifier's input; then step back over Normalize layers.
// Seed and coco LeNet++ nets: "ip1" (softmax, center and both COCO variants).
// Throws when the net has no loss layer (then --blob is needed). `rule` (if given)
// receives a one-line account of the steps taken.
std::string default_embedding_blob(const proto::NetParameter& net, const std::string& origin,
                                   std::string* rule = nullptr);

// The blob to embed and why: `requested` (--blob, val_blob) when given, else
// default_embedding_blob's, with the rule "default: ..." or "--blob".
struct EmbeddingChoice {
  std::string blob, rule;
};
EmbeddingChoice choose_embedding_blob(const proto::NetParameter& net, const std::string& requested,
                                      const std::string& origin);

// The layers of `net` (already phase-filtered) needed to compute `blob`, plus its inputs.
proto::NetParameter prune_to_blob(const proto::NetParameter& net, const std::string& blob,
                                  const std::string& origin);

// Mirrors images in place for flip-summed embeddings: reverses every run of `width`
// values (the last axis, an image row) of x[0, count).
void mirror_rows(float* x, int64_t count, int64_t width);

}  // namespace coco
