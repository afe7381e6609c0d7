// coco-bench comm: bandwidth of every collective, nccl-tests style, that is also a
// check. Each rank's input is a function of (seed, rank, index) that every rank can
// compute, so each rank verifies every element of every result; a wrong element
// makes the run exit non-zero. Bandwidths (nccl-tests' definitions):
//   algbw = bytes / time; busbw = algbw * 2(n-1)/n (all-reduce), * (n-1)/n
//   (all-gather, reduce-scatter: bytes = the whole gathered/scattered buffer),
//   * 1 (broadcast).
#include "tools/comm_bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "engine/common.h"
#include "engine/rng.h"

namespace coco {

namespace {

float input(int rank, int64_t i) { return static_cast<float>(static_cast<int64_t>(hash3(42, rank, i) % 17) - 8); }

struct Row {
  const char* name;
  double factor;  // busbw / algbw
};

}  // namespace

int run_comm_bench(Communicator& comm, int64_t min_bytes, int64_t max_bytes, int iters) {
  const int n = comm.size(), me = comm.rank();
  int errors = 0;
  if (me == 0) {
    std::printf("# coco-bench comm: %d ranks (%s), %d iterations per size, float32\n", n, comm.name().c_str(), iters);
    std::printf("%-15s %12s %12s %10s %10s %10s %8s\n", "collective", "bytes", "elements", "time_us", "algbw_GB/s",
                "busbw_GB/s", "errors");
  }
  for (int64_t bytes = min_bytes; bytes <= max_bytes; bytes *= 4) {
    const int64_t count = std::max<int64_t>(n, bytes / 4 / n * n);  // divisible by n
    const int64_t per = count / n;
    std::vector<float> a(count), b(count);
    const std::vector<int64_t> counts(n, per);
    const Row rows[] = {{"all_reduce", 2.0 * (n - 1) / n},
                        {"all_gather", 1.0 * (n - 1) / n},
                        {"reduce_scatter", 1.0 * (n - 1) / n},
                        {"broadcast", 1.0}};
    for (int c = 0; c < 4; ++c) {
      double best = 1e30;
      int64_t wrong = 0;
      for (int it = 0; it < iters + 1; ++it) {
        // Fresh inputs each time (all-reduce and broadcast work in place).
        for (int64_t i = 0; i < count; ++i) a[i] = input(me, i);
        comm.barrier();
        const auto t0 = std::chrono::steady_clock::now();
        switch (c) {
          case 0: comm.all_reduce(a.data(), count, ReduceOp::kSum); break;
          case 1: comm.all_gather(a.data(), b.data(), counts); break;
          case 2: comm.reduce_scatter(a.data(), b.data(), counts); break;
          case 3: comm.broadcast(a.data(), count, 0); break;
        }
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (it > 0) best = std::min(best, dt);  // the first run warms up
        if (it != iters) continue;
        // Verify the last run's result element by element.
        for (int64_t i = 0; i < (c == 2 ? per : count); ++i) {
          double want = 0;
          float got = 0;
          if (c == 0) {
            for (int r = 0; r < n; ++r) want += input(r, i);
            got = a[i];
          } else if (c == 1) {
            want = input(static_cast<int>(i / per), i % per);
            got = b[i];
          } else if (c == 2) {
            for (int r = 0; r < n; ++r) want += input(r, me * per + i);
            got = b[i];
          } else {
            want = input(0, i);
            got = a[i];
          }
          wrong += got != static_cast<float>(want);
        }
      }
      float w = static_cast<float>(wrong);
      comm.all_reduce(&w, 1, ReduceOp::kSum);
      errors += static_cast<int>(w);
      const double moved = static_cast<double>(count) * 4;
      const double algbw = moved / best / 1e9;
      if (me == 0)
        std::printf("%-15s %12lld %12lld %10.1f %10.3f %10.3f %8d\n", rows[c].name, static_cast<long long>(count * 4),
                    static_cast<long long>(count), best * 1e6, algbw, algbw * rows[c].factor, static_cast<int>(w));
    }
  }
  if (me == 0) std::printf("# %s: %d wrong elements\n", errors ? "FAILED" : "ok", errors);
  return errors ? 1 : 0;
}

}  // namespace coco
