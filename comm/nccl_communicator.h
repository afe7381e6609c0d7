// NCCL: the communicator for CUDA tensors (pointers are device pointers).
//
// Bootstrapped over MPI as in NVIDIA's examples: the local rank (from
// MPI_Comm_split_type SHARED) picks the GPU and is checked against the device
// count; rank 0 calls ncclGetUniqueId, MPI_Bcast shares it, every rank calls
// ncclCommInitRank. Collectives run on a dedicated stream, ordered against the
// compute stream (coco::cuda::stream()) by events in both directions, so they
// neither block the host nor race the kernels around them.
//
// Bounded failure: the communicator installs the device-wait watch
// (engine/device_wait.h), so every host wait on a device -- its own synchronize(),
// the loss read, a norm, a copy back -- polls ncclCommGetAsyncError and the
// collective timeout (comm/comm_timeout.h); on a fault it aborts the communicator
// (ncclCommAbort) and throws a coco::Error naming the wait and the last collective,
// and coco-train then aborts the job (MPI_Abort). A dead peer ends the job instead
// of hanging it. Destroyed while an exception unwinds, it aborts instead of
// ncclCommDestroy, which could block on peers still inside a collective. Teardown
// runs in reverse: communicator, then stream and events.
//
// Built only with CUDA and NCCL (COCO_WITH_NCCL); elsewhere constructing one throws.
#pragma once

#include <memory>
#include <string>

#include "comm/communicator.h"

namespace coco {

class MpiCommunicator;

class NcclCommunicator final : public Communicator {
 public:
  // Over an MPI job: device = the local rank unless given.
  NcclCommunicator(MpiCommunicator& bootstrap, int device = -1);
  // One process, one GPU (size 1; no MPI needed).
  explicit NcclCommunicator(int device);
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int device() const { return device_; }
  std::string name() const override { return "nccl"; }

  void all_reduce(float* data, int64_t count, ReduceOp op) override;
  void all_gather(const float* send, float* recv, const std::vector<int64_t>& counts) override;
  void reduce_scatter(const float* send, float* recv, const std::vector<int64_t>& counts) override;
  void broadcast(float* data, int64_t count, int root) override;
  void barrier() override;
  // Waits for every queued collective (see the file comment for the timeout).
  void synchronize();
  // The device-wait watch: throws after aborting the communicator on an NCCL async
  // error or once `waited_s` passes the collective timeout.
  void check_health(const std::string& what, double waited_s);

 private:
  struct State;
  void begin();                                // orders the comm stream after compute
  void end(Collective c, int64_t bytes);       // orders compute after the comm stream
  void watch_device_waits();
  void abort();
  std::unique_ptr<State> s_;
  int rank_ = 0, size_ = 1, local_rank_ = 0, device_ = 0;
  int exceptions_at_construction_ = 0;  // std::uncaught_exceptions(): unwinding iff more at destruction
};

bool nccl_available();  // built with NCCL

}  // namespace coco
