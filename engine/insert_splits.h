// Split insertion (as Caffe does): where one version of a blob feeds several layers,
// a Split layer right after its producer gives each consumer a copy of its own, so
// every layer's backward can write (=, never +=) its bottom diff.
#pragma once

#include <string>

#include "engine/proto_fwd.h"

namespace coco {

// The net with a Split after every producer whose top has two or more readers, those
// readers rewired to the Split's tops "<blob>_<producer>_<top index>_split_<k>". Also
// checks the wiring: every layer named, no two alike, every bottom produced earlier,
// no layer in place on a blob others read. Keeps the name and force_backward only.
proto::NetParameter insert_splits(const proto::NetParameter& net, const std::string& origin);

}  // namespace coco
