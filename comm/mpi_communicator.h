// MPI: the communicator for CPU tensors, and the process-level MPI runtime.
//
// Why: a CPU job under `mpirun -np N` needs real collectives; the head and the
// solver call them through Communicator, so nothing else changes. MPI is
// initialised only when the process was started by an MPI launcher (the
// launcher's environment says so), so one-process runs need no MPI at all. Errors
// are returned (MPI_ERRORS_RETURN) and become coco::Error naming the call. An MPI
// call that has not returned after comm_timeout_s() (comm/comm_timeout.h) ends the
// process non-zero, naming the call: a peer that died or was cut off without the
// launcher ending the job must not leave the others waiting forever.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "comm/communicator.h"

namespace coco {

// True when an MPI launcher (mpirun/mpiexec of Open MPI, MPICH, Slurm's PMI)
// started this process.
bool launched_by_mpi();

// Owns MPI_Init / MPI_Finalize. Construct once in main().
class MpiRuntime {
 public:
  MpiRuntime(int* argc, char*** argv);
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;
  // Ends every process of the job with `code` (MPI_Abort): no peer is left hanging.
  [[noreturn]] static void abort_job(int code);
  static bool initialized();
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator();  // duplicates MPI_COMM_WORLD; MPI must be initialised
  // The ranks of `parent` that pass member = true, in their order (a collective
  // call on parent). On the others the result is not valid() and must not be used.
  MpiCommunicator(const MpiCommunicator& parent, bool member);
  ~MpiCommunicator() override;
  bool valid() const;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const { return local_size_; }
  std::string name() const override { return "mpi"; }

  void all_reduce(float* data, int64_t count, ReduceOp op) override;
  void all_gather(const float* send, float* recv, const std::vector<int64_t>& counts) override;
  void reduce_scatter(const float* send, float* recv, const std::vector<int64_t>& counts) override;
  void broadcast(float* data, int64_t count, int root) override;
  void barrier() override;

 private:
  void describe_peers();
  struct Comms;
  std::unique_ptr<Comms> comms_;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
};

// The communicator for this process: MPI when launched by mpirun, else local.
std::unique_ptr<Communicator> make_cpu_communicator();

// Runs `body` and turns any exception into one log line naming the rank; on a job of
// several ranks it then aborts every rank (MPI_Abort), so a failure on one rank ends
// the job at once instead of leaving its peers waiting in a collective. Returns
// body's exit code, or 1 after an error in a one-process run.
int run_or_abort_job(int size, const std::function<int()>& body);

}  // namespace coco
