#include "comm/nccl_communicator.h"

#include "engine/cuda_runtime.h"

#include "engine/common.h"

#if COCO_WITH_NCCL
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

#include <exception>

#include "comm/comm_timeout.h"
#include "comm/lost_peer.h"
#include "comm/mpi_communicator.h"
#include "engine/device_wait.h"
#include "engine/gpu_check.h"  // after cuda_runtime_api.h and nccl.h
#endif

namespace coco {

#if COCO_WITH_NCCL

bool nccl_available() { return true; }

struct NcclCommunicator::State {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t compute_done = nullptr, comm_done = nullptr;
  float* scratch = nullptr;  // one float for barrier()
  const char* last = "none";
};

namespace {
ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kMax: return ncclMax;
    case ReduceOp::kMin: return ncclMin;
    case ReduceOp::kAvg: return ncclAvg;
  }
  return ncclSum;
}

// ncclGroupStart .. ncclGroupEnd as a scope: a throw between them still closes the
// group (NCCL requires every started group to end), and the error is the one thrown.
class NcclGroup {
 public:
  NcclGroup() { COCO_NCCL_CHECK(ncclGroupStart()); }
  ~NcclGroup() {
    if (open_) ncclGroupEnd();
  }
  void end() {
    open_ = false;
    COCO_NCCL_CHECK(ncclGroupEnd());
  }

 private:
  bool open_ = true;
};

}  // namespace

static void make_stream_and_events(int device, cudaStream_t* stream, cudaEvent_t* a, cudaEvent_t* b, float** scratch) {
  coco::cuda::set_device(device);  // coco's context (stream, allocator) for this GPU
  COCO_CUDA_CHECK(cudaStreamCreateWithFlags(stream, cudaStreamNonBlocking));
  COCO_CUDA_CHECK(cudaEventCreateWithFlags(a, cudaEventDisableTiming));
  COCO_CUDA_CHECK(cudaEventCreateWithFlags(b, cudaEventDisableTiming));
  COCO_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(scratch), sizeof(float)));
}

NcclCommunicator::NcclCommunicator(MpiCommunicator& mpi, int device)
    : s_(std::make_unique<State>()), exceptions_at_construction_(std::uncaught_exceptions()) {
  rank_ = mpi.rank();
  size_ = mpi.size();
  local_rank_ = mpi.local_rank();
  int devices = 0;
  COCO_CUDA_CHECK(cudaGetDeviceCount(&devices));
  device_ = device >= 0 ? device : local_rank_;
  if (device_ >= devices)
    COCO_THROW("rank ", rank_, ": local rank ", local_rank_, " needs GPU ", device_, " but this node has ", devices,
               " (start at most as many ranks per node as GPUs)");
  make_stream_and_events(device_, &s_->stream, &s_->compute_done, &s_->comm_done, &s_->scratch);
  ncclUniqueId id;
  if (rank_ == 0) COCO_NCCL_CHECK(ncclGetUniqueId(&id));
  if (MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
    COCO_THROW("rank ", rank_, ": MPI_Bcast of the NCCL id failed");
  COCO_NCCL_CHECK(ncclCommInitRank(&s_->comm, size_, id, rank_));
  watch_device_waits();
}

NcclCommunicator::NcclCommunicator(int device)
    : s_(std::make_unique<State>()), device_(device), exceptions_at_construction_(std::uncaught_exceptions()) {
  int devices = 0;
  COCO_CUDA_CHECK(cudaGetDeviceCount(&devices));
  if (device_ < 0 || device_ >= devices) COCO_THROW("GPU ", device_, " does not exist (", devices, " found)");
  make_stream_and_events(device_, &s_->stream, &s_->compute_done, &s_->comm_done, &s_->scratch);
  ncclUniqueId id;
  COCO_NCCL_CHECK(ncclGetUniqueId(&id));
  COCO_NCCL_CHECK(ncclCommInitRank(&s_->comm, 1, id, 0));
  watch_device_waits();
}

void NcclCommunicator::watch_device_waits() {
  set_device_wait_watch([this](const std::string& what, double waited_s) { check_health(what, waited_s); });
}

NcclCommunicator::~NcclCommunicator() {
  if (!s_) return;
  set_device_wait_watch({});
  // The communicator first, then what it ran on. While an exception unwinds, peers
  // may sit in a collective with us: ncclCommDestroy could wait for them, abort does not.
  if (s_->comm && std::uncaught_exceptions() > exceptions_at_construction_) abort();
  if (s_->comm) ncclCommDestroy(s_->comm);
  if (s_->scratch) cudaFree(s_->scratch);
  if (s_->comm_done) cudaEventDestroy(s_->comm_done);
  if (s_->compute_done) cudaEventDestroy(s_->compute_done);
  if (s_->stream) cudaStreamDestroy(s_->stream);
}

void NcclCommunicator::begin() {
  if (!s_->comm) COCO_THROW("rank ", rank_, ": the NCCL communicator was aborted after an earlier fault");
  COCO_CUDA_CHECK(cudaEventRecord(s_->compute_done, coco::cuda::stream()));
  COCO_CUDA_CHECK(cudaStreamWaitEvent(s_->stream, s_->compute_done, 0));
}

void NcclCommunicator::end(Collective c, int64_t bytes) {
  COCO_CUDA_CHECK(cudaEventRecord(s_->comm_done, s_->stream));
  COCO_CUDA_CHECK(cudaStreamWaitEvent(coco::cuda::stream(), s_->comm_done, 0));
  s_->last = collective_name(c);
  record(c, bytes, 0);  // asynchronous: time is measured by synchronize() callers
}

void NcclCommunicator::abort() {
  if (!s_->comm) return;
  ncclCommAbort(s_->comm);
  s_->comm = nullptr;
}

void NcclCommunicator::check_health(const std::string& what, double waited_s) {
  if (!s_->comm) COCO_THROW("rank ", rank_, ": ", what, ": the NCCL communicator was aborted after an earlier fault");
  ncclResult_t async = ncclSuccess;
  COCO_NCCL_CHECK(ncclCommGetAsyncError(s_->comm, &async));
  const double timeout = comm_timeout_s();
  const bool late = timeout > 0 && waited_s > timeout;
  if (async == ncclSuccess && !late) return;
  note_peer_lost();  // the job's abort ends the launcher daemon too (comm/lost_peer.h)
  abort();
  COCO_THROW("rank ", rank_, ": ", what, ", after NCCL ", s_->last,
             async != ncclSuccess ? std::string(" failed: ") + gpu::error_string(async)
                                  : " made no progress in " + std::to_string(static_cast<int64_t>(waited_s)) +
                                        " s (--comm-timeout): a peer rank has died, hangs or cannot be "
                                        "reached (it waits on " + peer_description() + ")",
             "; the NCCL communicator was aborted");
}

void NcclCommunicator::synchronize() {
  wait_until(
      [&] {
        const cudaError_t q = cudaEventQuery(s_->comm_done);
        if (q == cudaErrorNotReady) return false;
        if (q != cudaSuccess) COCO_THROW("rank ", rank_, ": CUDA error after ", s_->last, ": ", gpu::error_string(q));
        return true;
      },
      std::string("NCCL ") + s_->last);
}

void NcclCommunicator::all_reduce(float* data, int64_t count, ReduceOp op) {
  begin();
  COCO_NCCL_CHECK(ncclAllReduce(data, data, count, ncclFloat, nccl_op(op), s_->comm, s_->stream));
  end(Collective::kAllReduce, count * 4);
}

void NcclCommunicator::all_gather(const float* send, float* recv, const std::vector<int64_t>& counts) {
  COCO_CHECK(static_cast<int>(counts.size()) == size_, "all_gather needs one count per rank");
  begin();
  int64_t total = 0;
  bool equal = true;
  for (auto c : counts) total += c, equal = equal && c == counts[0];
  if (equal) {
    COCO_NCCL_CHECK(ncclAllGather(send, recv, counts[0], ncclFloat, s_->comm, s_->stream));
  } else {  // NCCL has no all-gather-v: one broadcast per rank, grouped
    NcclGroup group;
    int64_t off = 0;
    for (int r = 0; r < size_; ++r) {
      COCO_NCCL_CHECK(
          ncclBroadcast(r == rank_ ? send : recv + off, recv + off, counts[r], ncclFloat, r, s_->comm, s_->stream));
      off += counts[r];
    }
    group.end();
  }
  end(Collective::kAllGather, total * 4);
}

void NcclCommunicator::reduce_scatter(const float* send, float* recv, const std::vector<int64_t>& counts) {
  COCO_CHECK(static_cast<int>(counts.size()) == size_, "reduce_scatter needs one count per rank");
  begin();
  int64_t total = 0;
  bool equal = true;
  for (auto c : counts) total += c, equal = equal && c == counts[0];
  if (equal) {
    COCO_NCCL_CHECK(ncclReduceScatter(send, recv, counts[0], ncclFloat, ncclSum, s_->comm, s_->stream));
  } else {  // one reduce per rank to its owner, grouped
    NcclGroup group;
    int64_t off = 0;
    for (int r = 0; r < size_; ++r) {
      COCO_NCCL_CHECK(ncclReduce(send + off, r == rank_ ? recv : nullptr, counts[r], ncclFloat, ncclSum, r, s_->comm,
                                 s_->stream));
      off += counts[r];
    }
    group.end();
  }
  end(Collective::kReduceScatter, total * 4);
}

void NcclCommunicator::broadcast(float* data, int64_t count, int root) {
  COCO_CHECK(root >= 0 && root < size_, "broadcast root ", root, " of ", size_, " ranks");
  begin();
  COCO_NCCL_CHECK(ncclBroadcast(data, data, count, ncclFloat, root, s_->comm, s_->stream));
  end(Collective::kBroadcast, count * 4);
}

void NcclCommunicator::barrier() {
  begin();
  COCO_NCCL_CHECK(ncclAllReduce(s_->scratch, s_->scratch, 1, ncclFloat, ncclSum, s_->comm, s_->stream));
  end(Collective::kBarrier, 0);
  synchronize();
}

#else  // !COCO_WITH_NCCL

bool nccl_available() { return false; }
struct NcclCommunicator::State {};
NcclCommunicator::NcclCommunicator(MpiCommunicator&, int) {
  COCO_THROW("this coco build has no NCCL (configure with CUDA and NCCL)");
}
NcclCommunicator::NcclCommunicator(int) { COCO_THROW("this coco build has no NCCL (configure with CUDA and NCCL)"); }
NcclCommunicator::~NcclCommunicator() = default;
void NcclCommunicator::all_reduce(float*, int64_t, ReduceOp) {}
void NcclCommunicator::all_gather(const float*, float*, const std::vector<int64_t>&) {}
void NcclCommunicator::reduce_scatter(const float*, float*, const std::vector<int64_t>&) {}
void NcclCommunicator::broadcast(float*, int64_t, int) {}
void NcclCommunicator::barrier() {}
void NcclCommunicator::synchronize() {}
void NcclCommunicator::check_health(const std::string&, double) {}
void NcclCommunicator::watch_device_waits() {}
void NcclCommunicator::abort() {}
void NcclCommunicator::begin() {}
void NcclCommunicator::end(Collective, int64_t) {}

#endif

}  // namespace coco
