// Settings every rank of a job must share, compared once at start-up, before any
// collective that depends on them. Ranks started with different command lines
// (MPMD, a wrapper that edits one rank's flags) otherwise hang in mismatched
// collectives or train with exit 0 and leave checkpoints that fail later.
#pragma once

#include <string>
#include <vector>

#include "comm/communicator.h"

namespace coco {

struct AgreedSetting {
  std::string name;   // as the user knows it: "max_iter (--max-iter)"
  std::string value;  // this rank's value, as text
};

// Collective (every rank calls it with the same list of names). Returns when every
// rank's values equal rank 0's; otherwise throws on every rank one error naming
// each setting that differs, the first rank where it does, and this rank's value.
void require_ranks_agree(const std::vector<AgreedSetting>& settings, Communicator& comm);

}  // namespace coco
