// coco-train: trains a net from a solver config, in one process or under mpirun
// (one rank per process; MPI is started only when a launcher started us). Errors
// are caught here, once, and reported as one line naming the rank, the file and the
// place; on several ranks the whole job is then aborted (MPI_Abort) so no peer
// waits forever in a collective.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "comm/communicator.h"
#include "comm/mpi_communicator.h"
#include "comm/nccl_communicator.h"
#include "engine/cli.h"
#include "engine/common.h"
#include "engine/cuda_runtime.h"
#include "engine/logging.h"
#include "engine/math.h"
#include "engine/tensor.h"
#include "engine/trainer.h"

namespace {

using coco::UsageError;
using coco::parse_int_flag;

const char* kUsage = R"(usage: coco-train --config FILE [options]

Trains the net of a solver config (Caffe's SolverParameter with coco's data
fields) on the CPU or a GPU, in one process or data parallel under mpirun:
  mpirun -np N coco-train --config FILE    (each rank trains on its slice of
                                            the batch; gradients are summed)
  mpirun -np N coco-train --config FILE --device cuda
                                           (one GPU per rank, by local rank;
                                            NCCL joins them)

  --config FILE          solver config (or, with --dry-run, a net prototxt)
  --dry-run              build the net, print every layer's top shapes and
                         parameter count, and exit
  --data-root DIR        read the data from DIR instead of the folder named in
                         the config's sources (e.g. the MNIST folder)
  --max-iter N           train N iterations in total (overrides max_iter)
  --batch-size N         training batch size (overrides train_data.batch_size)
  --metrics PATH         append JSON lines: one per display step
                         {"iter","loss","lr","images_per_s"} and one per test
                         pass {"iter","test_loss","test_accuracy"}
  --snapshot-prefix P    checkpoints are written to P_iter_N.ckpt
  --resume CKPT          continue from a checkpoint (iteration, solver state,
                         parameters)
  --weights FILE         start from the parameters of a coco checkpoint or a
                         Caffe .caffemodel (matched by layer name); a layer with
                         parameters that the file does not hold is an error
  --weights-keep-fillers L1[,L2...]
                         with --weights: these layers are not in the file and
                         start from their fillers (fine-tuning a new head)
  --seed N               random seed (overrides random_seed; default 1)
  --threads N            CPU threads per rank for BLAS and coco's loops
                         (default: the cores divided among this node's ranks;
                         more than the cores this process may use is clamped,
                         with a warning)
  --device DEV           cpu (default), cuda (GPU = local rank) or cuda:N
                         (needs a build with the CUDA backend)
  --debug                one process (no MPI): after every layer's forward and
                         backward a synchronous CUDA error check and a NaN/Inf
                         scan that names the iteration, layer and blob;
                         deterministic algorithms, so two runs give identical
                         losses
  --debug-gradcheck      with --debug: first check every loss layer's gradient
                         against finite differences on the first batch
  --on-nonfinite ACTION  a step whose loss or gradient is NaN/Inf: stop
                         (default; names the layer, writes no checkpoint after
                         the last good one) or skip (no update; counted and
                         logged)
  -h, --help             this text
)";

}  // namespace

int main(int argc, char** argv) {
  coco::TrainOptions opt;
  int threads = 0;
  std::string device = "cpu";
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&] { return coco::flag_value(argc, argv, i, a); };
      if (a == "-h" || a == "--help") {
        std::fputs(kUsage, stdout);
        return 0;
      } else if (a == "--config") {
        opt.config = value();
      } else if (a == "--dry-run") {
        opt.dry_run = true;
      } else if (a == "--data-root") {
        opt.data_root = value();
      } else if (a == "--max-iter") {
        opt.max_iter = parse_int_flag(a, value(), 0);
      } else if (a == "--batch-size") {
        opt.batch_size = parse_int_flag(a, value(), 0);
        if (opt.batch_size == 0) throw UsageError{"--batch-size must be positive"};
      } else if (a == "--metrics") {
        opt.metrics = value();
      } else if (a == "--snapshot-prefix") {
        opt.snapshot_prefix = value();
      } else if (a == "--resume") {
        opt.resume = value();
      } else if (a == "--weights") {
        opt.weights = value();
      } else if (a == "--weights-keep-fillers") {
        std::stringstream names(value());
        for (std::string n; std::getline(names, n, ',');)
          if (!n.empty()) opt.weights_keep_fillers.push_back(n);
        if (opt.weights_keep_fillers.empty()) throw UsageError{"--weights-keep-fillers needs layer names"};
      } else if (a == "--seed") {
        opt.seed = parse_int_flag(a, value(), 0);
      } else if (a == "--threads") {
        threads = static_cast<int>(parse_int_flag(a, value(), 0));
      } else if (a == "--device") {
        device = value();
      } else if (a == "--debug") {
        opt.debug = true;
      } else if (a == "--debug-gradcheck") {
        opt.debug = opt.debug_gradcheck = true;
      } else if (a == "--on-nonfinite") {
        const std::string v = value();
        if (v != "stop" && v != "skip") throw UsageError{"--on-nonfinite takes stop or skip, not '" + v + "'"};
        opt.skip_nonfinite = v == "skip";
      } else {
        throw UsageError{"unknown option '" + a + "'"};
      }
    }
    if (opt.config.empty()) throw UsageError{"--config is required"};
    if (!opt.resume.empty() && !opt.weights.empty()) throw UsageError{"--resume and --weights exclude each other"};
    if (!opt.weights_keep_fillers.empty() && opt.weights.empty())
      throw UsageError{"--weights-keep-fillers goes with --weights"};
  } catch (const UsageError& e) {
    std::fprintf(stderr, "coco-train: %s\n\n%s", e.msg.c_str(), kUsage);
    return 2;
  }

  std::unique_ptr<coco::MpiRuntime> mpi;
  std::unique_ptr<coco::Communicator> comm;
  int rank = 0, size = 1;
  try {
    if (coco::launched_by_mpi()) mpi = std::make_unique<coco::MpiRuntime>(&argc, &argv);
    comm = coco::make_cpu_communicator();
    rank = comm->rank();
    size = comm->size();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "coco-train: cannot start MPI: %s\n", e.what());
    return 1;
  }
  coco::init_logging(rank, size);
  return coco::run_or_abort_job(size, [&]() -> int {
    if (opt.debug && size > 1)
      COCO_THROW("--debug runs in one process; start coco-train without mpirun");
    const auto dev = coco::DeviceSpec::parse(device);
    std::unique_ptr<coco::Communicator> nccl;
    if (dev.type == coco::Device::kCUDA) {
      if (!coco::cuda::available())
        COCO_THROW("--device ", device, ": ",
                   COCO_WITH_CUDA ? "no CUDA device is visible" : "this coco build has no CUDA backend",
                   " (use --device cpu)");
      const int index = size > 1 && device == "cuda" ? comm->local_rank() : dev.index;
      coco::cuda::set_device(index);
      if (size > 1)
        nccl = std::make_unique<coco::NcclCommunicator>(*static_cast<coco::MpiCommunicator*>(comm.get()), index);
      opt.device = coco::Device::kCUDA;
    }
    coco::cuda::set_deterministic(opt.debug);
    if (threads == 0 && size > 1) {
      const int local = static_cast<coco::MpiCommunicator*>(comm.get())->local_size();
      threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(local, 1));
    }
    coco::set_num_threads(threads);
    coco::set_flush_denormals(true);
    coco::Trainer trainer(opt, nccl ? nccl.get() : comm.get(), comm.get());
    if (opt.dry_run) {
      if (rank == 0) std::cout << trainer.describe();
      return 0;
    }
    const auto r = trainer.run();
    if (!std::isnan(r.test_loss) && rank == 0)
      spdlog::info("final: test loss {:.6f}, test accuracy {:.4f}", r.test_loss, r.test_accuracy);
    if (r.skipped_steps > 0 && rank == 0) spdlog::warn("{} non-finite step(s) were skipped", r.skipped_steps);
    return 0;
  });
}
