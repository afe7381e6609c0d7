// A job whose rank 1 fails while the others wait in a collective: the job must end
// with a non-zero exit well within 30 s (ctest's timeout), never hang. It uses the
// same top-level guard as coco-train (run_or_abort_job).
#include <chrono>
#include <thread>

#include "comm/mpi_communicator.h"
#include "engine/common.h"
#include "engine/logging.h"

int main(int argc, char** argv) {
  coco::MpiRuntime mpi(&argc, &argv);
  coco::MpiCommunicator comm;
  coco::init_logging(comm.rank(), comm.size());
  return coco::run_or_abort_job(comm.size(), [&]() -> int {
    std::vector<float> x(1000, 1.f);
    for (int step = 0; step < 1000000; ++step) {
      if (comm.rank() == 1 && step == 3) COCO_THROW("injected failure on rank 1 at step ", step);
      comm.all_reduce(x.data(), static_cast<int64_t>(x.size()), coco::ReduceOp::kMax);
    }
    return 0;  // not reached: the peers of rank 1 wait in all_reduce until aborted
  });
}
