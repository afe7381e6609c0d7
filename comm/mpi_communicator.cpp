#include "comm/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <numeric>
#include <thread>

#include "comm/comm_timeout.h"
#include "comm/lost_peer.h"
#include "engine/common.h"
#include "engine/logging.h"

#define COCO_MPI_CALL(call)                                                              \
  do {                                                                                   \
    ::coco::CallWatch watch_(#call);                                                     \
    int rc_ = (call);                                                                    \
    if (rc_ != MPI_SUCCESS) {                                                            \
      char msg_[MPI_MAX_ERROR_STRING];                                                   \
      int len_ = 0;                                                                      \
      MPI_Error_string(rc_, msg_, &len_);                                                \
      ::coco::detail::throw_error(__FILE__, __LINE__,                                    \
                                  std::string(#call " failed: ") + std::string(msg_, len_)); \
    }                                                                                    \
  } while (0)

namespace coco {

// A blocking MPI call waits forever for a peer that died without the launcher
// ending the job (mpiexec --enable-recovery, some batch systems, a network
// partition). A watchdog thread ends this process, non-zero and with one line
// naming the call, when an MPI call has not returned after comm_timeout_s()
// (comm/comm_timeout.h: why its default is what it is).
class CallWatch {
 public:
  explicit CallWatch(const char* call) {
    if (timeout_s() <= 0) return;
    start_watchdog();
    call_.store(call);
    since_ns_.store(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  ~CallWatch() { since_ns_.store(0); }

 private:
  static double timeout_s() { return comm_timeout_s(); }
  static void start_watchdog() {
    static std::once_flag once;
    std::call_once(once, [] {
      std::thread([] {
        for (;;) {
          std::this_thread::sleep_for(std::chrono::duration<double>(std::min(1.0, timeout_s() / 4)));
          const int64_t since = since_ns_.load();
          if (since == 0) continue;
          const double waited =
              std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch() -
                                            std::chrono::steady_clock::duration(since))
                  .count();
          if (timeout_s() <= 0 || waited < timeout_s() || since_ns_.load() != since) continue;
          const std::string call = call_.load();
          spdlog::error("{} has not returned after {:.0f} s (--comm-timeout): a peer rank has died, hangs or "
                        "cannot be reached (it waits on {}); ending this rank and its launcher daemon",
                        call.substr(0, call.find('(')), waited, peer_description());
          spdlog::default_logger()->flush();
          end_launcher_daemon();  // comm/lost_peer.h: why
          std::_Exit(1);
        }
      }).detach();
    });
  }
  static inline std::atomic<int64_t> since_ns_{0};  // 0: no MPI call in progress
  static inline std::atomic<const char*> call_{""};
};

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int checked_int(int64_t n, const char* what) {
  if (n < 0 || n > INT_MAX) COCO_THROW(what, ": ", n, " elements do not fit MPI's int counts");
  return static_cast<int>(n);
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: return MPI_SUM;
    case ReduceOp::kMax: return MPI_MAX;
    case ReduceOp::kMin: return MPI_MIN;
  }
  return MPI_SUM;
}

}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS", "PMI_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

MpiRuntime::MpiRuntime(int* argc, char*** argv) {
  int provided = 0;
  COCO_MPI_CALL(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MpiRuntime::~MpiRuntime() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  CallWatch watch("MPI_Finalize()");
  if (!finalized) MPI_Finalize();
}

void MpiRuntime::abort_job(int code) {
  if (peer_lost()) end_launcher_daemon();  // MPI_Abort's report may never reach mpirun
  if (initialized()) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

bool MpiRuntime::initialized() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

struct MpiCommunicator::Comms {
  MPI_Comm world = MPI_COMM_NULL;
  MPI_Comm node = MPI_COMM_NULL;
};

MpiCommunicator::MpiCommunicator() : comms_(std::make_unique<Comms>()) {
  COCO_CHECK(MpiRuntime::initialized(), "MpiCommunicator needs MPI to be initialised (MpiRuntime)");
  COCO_MPI_CALL(MPI_Comm_dup(MPI_COMM_WORLD, &comms_->world));
  MPI_Comm_set_errhandler(comms_->world, MPI_ERRORS_RETURN);
  COCO_MPI_CALL(MPI_Comm_rank(comms_->world, &rank_));
  COCO_MPI_CALL(MPI_Comm_size(comms_->world, &size_));
  // Ranks sharing this node: the local rank picks the GPU.
  COCO_MPI_CALL(MPI_Comm_split_type(comms_->world, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &comms_->node));
  COCO_MPI_CALL(MPI_Comm_rank(comms_->node, &local_rank_));
  COCO_MPI_CALL(MPI_Comm_size(comms_->node, &local_size_));
  describe_peers();
}

// Every rank's host, once, so that a collective that times out can say whom it waits on.
void MpiCommunicator::describe_peers() {
  char name[MPI_MAX_PROCESSOR_NAME] = {0};
  int length = 0;
  COCO_MPI_CALL(MPI_Get_processor_name(name, &length));
  std::vector<char> all(static_cast<size_t>(size_) * MPI_MAX_PROCESSOR_NAME);
  COCO_MPI_CALL(MPI_Allgather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all.data(), MPI_MAX_PROCESSOR_NAME, MPI_CHAR,
                              comms_->world));
  std::string text;
  int named = 0;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    if (named == 8) {
      text += ", and " + std::to_string(size_ - 1 - named) + " more ranks";
      break;
    }
    text += (named++ ? ", rank " : "rank ") + std::to_string(r) + " on " +
            std::string(&all[static_cast<size_t>(r) * MPI_MAX_PROCESSOR_NAME]);
  }
  set_peer_description(text);
}

MpiCommunicator::MpiCommunicator(const MpiCommunicator& parent, bool member) : comms_(std::make_unique<Comms>()) {
  COCO_MPI_CALL(MPI_Comm_split(parent.comms_->world, member ? 0 : MPI_UNDEFINED, parent.rank_, &comms_->world));
  if (comms_->world == MPI_COMM_NULL) return;
  MPI_Comm_set_errhandler(comms_->world, MPI_ERRORS_RETURN);
  COCO_MPI_CALL(MPI_Comm_rank(comms_->world, &rank_));
  COCO_MPI_CALL(MPI_Comm_size(comms_->world, &size_));
  COCO_MPI_CALL(MPI_Comm_split_type(comms_->world, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &comms_->node));
  COCO_MPI_CALL(MPI_Comm_rank(comms_->node, &local_rank_));
  COCO_MPI_CALL(MPI_Comm_size(comms_->node, &local_size_));
}

bool MpiCommunicator::valid() const { return comms_->world != MPI_COMM_NULL; }

MpiCommunicator::~MpiCommunicator() {
  if (!MpiRuntime::initialized()) return;
  if (comms_->node != MPI_COMM_NULL) MPI_Comm_free(&comms_->node);
  if (comms_->world != MPI_COMM_NULL) MPI_Comm_free(&comms_->world);
}

void MpiCommunicator::all_reduce(float* data, int64_t count, ReduceOp op) {
  const auto t0 = Clock::now();
  COCO_MPI_CALL(MPI_Allreduce(MPI_IN_PLACE, data, checked_int(count, "all_reduce"), MPI_FLOAT, mpi_op(op),
                              comms_->world));
  if (op == ReduceOp::kAvg) {
    const float inv = 1.0f / size_;
    for (int64_t i = 0; i < count; ++i) data[i] *= inv;
  }
  record(Collective::kAllReduce, count * static_cast<int64_t>(sizeof(float)), since(t0));
}

void MpiCommunicator::all_gather(const float* send, float* recv, const std::vector<int64_t>& counts) {
  COCO_CHECK(static_cast<int>(counts.size()) == size_, "all_gather needs one count per rank: ", counts.size(),
             " for ", size_, " ranks");
  const auto t0 = Clock::now();
  std::vector<int> cnt(size_), displ(size_);
  int64_t total = 0;
  for (int r = 0; r < size_; ++r) {
    cnt[r] = checked_int(counts[r], "all_gather");
    displ[r] = checked_int(total, "all_gather offset");
    total += counts[r];
  }
  // Our own block is already in place when send points into recv at our offset.
  const void* src = send == recv + displ[rank_] ? MPI_IN_PLACE : send;
  COCO_MPI_CALL(MPI_Allgatherv(src, cnt[rank_], MPI_FLOAT, recv, cnt.data(), displ.data(), MPI_FLOAT, comms_->world));
  record(Collective::kAllGather, total * static_cast<int64_t>(sizeof(float)), since(t0));
}

void MpiCommunicator::reduce_scatter(const float* send, float* recv, const std::vector<int64_t>& counts) {
  COCO_CHECK(static_cast<int>(counts.size()) == size_, "reduce_scatter needs one count per rank: ", counts.size(),
             " for ", size_, " ranks");
  const auto t0 = Clock::now();
  std::vector<int> cnt(size_);
  int64_t total = 0;
  for (int r = 0; r < size_; ++r) {
    cnt[r] = checked_int(counts[r], "reduce_scatter");
    total += counts[r];
  }
  checked_int(total, "reduce_scatter total");
  COCO_MPI_CALL(MPI_Reduce_scatter(send, recv, cnt.data(), MPI_FLOAT, MPI_SUM, comms_->world));
  record(Collective::kReduceScatter, total * static_cast<int64_t>(sizeof(float)), since(t0));
}

void MpiCommunicator::broadcast(float* data, int64_t count, int root) {
  COCO_CHECK(root >= 0 && root < size_, "broadcast root ", root, " of ", size_, " ranks");
  const auto t0 = Clock::now();
  COCO_MPI_CALL(MPI_Bcast(data, checked_int(count, "broadcast"), MPI_FLOAT, root, comms_->world));
  record(Collective::kBroadcast, count * static_cast<int64_t>(sizeof(float)), since(t0));
}

void MpiCommunicator::barrier() {
  const auto t0 = Clock::now();
  COCO_MPI_CALL(MPI_Barrier(comms_->world));
  record(Collective::kBarrier, 0, since(t0));
}

int run_or_abort_job(int size, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    if (size > 1) {
      spdlog::error("aborting all {} ranks", size);
      spdlog::default_logger()->flush();
      MpiRuntime::abort_job(1);
    }
    return 1;
  }
}

std::unique_ptr<Communicator> make_cpu_communicator() {
  if (MpiRuntime::initialized()) return std::make_unique<MpiCommunicator>();
  return std::make_unique<LocalCommunicator>();
}

}  // namespace coco
