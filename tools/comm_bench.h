// coco-bench comm (see comm_bench.cpp).
#pragma once

#include <cstdint>

#include "comm/communicator.h"

namespace coco {

// Prints one line per collective and size (bytes from min to max, x4 each step);
// returns 0 if every element of every result was right, 1 otherwise.
int run_comm_bench(Communicator& comm, int64_t min_bytes, int64_t max_bytes, int iters);

}  // namespace coco
