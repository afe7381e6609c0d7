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
#include <vector>

#include <CLI/CLI.hpp>

#include "comm/comm_timeout.h"
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

const char* kUsage = R"(usage: coco-train --config FILE [options]

Trains the net of a solver config (Caffe's SolverParameter with coco's data
fields) on the CPU or a GPU, in one process or data parallel under mpirun:
  mpirun -np N coco-train --config FILE    (each rank trains on its slice of
                                            the batch; gradients are summed)
  mpirun -np N coco-train --config FILE --device cuda
                                           (one GPU per rank, by local rank;
                                            NCCL joins them)
)";

// "L1,L2" (empty names dropped) appended to `names`; a list of no names is refused.
void add_layer_names(const std::string& list, std::vector<std::string>* names) {
  std::stringstream in(list);
  const size_t before = names->size();
  for (std::string n; std::getline(in, n, ',');)
    if (!n.empty()) names->push_back(n);
  if (names->size() == before) throw UsageError{"--weights-keep-fillers needs layer names"};
}

// What the command line sets: the trainer's options and what main applies itself.
struct TrainFlags {
  coco::TrainOptions opt;
  int threads = 0;
  std::string device = "cpu";
  std::string on_nonfinite = "stop";
  double comm_timeout = std::nan("");  // NaN: not given (COCO_COMM_TIMEOUT, else the default)
};

void add_train_flags(CLI::App& app, TrainFlags& flags) {
  coco::TrainOptions& opt = flags.opt;
  coco::describe_tool(app, kUsage);
  app.add_option("--config", opt.config, "solver config (or, with --dry-run, a net prototxt)")
      ->type_name("FILE")->required();
  app.add_flag("--dry-run", opt.dry_run,
               "print every layer's top shapes and parameter count at\nrank 0's share, and the memory plan per rank "
               "(parameters,\ngradients, momentum, activations, the head's shard,\nlogits cache and buffers) and the "
               "bytes each\ncollective moves per step; allocates no run (a small\nnet is built and measured), and exit");
  coco::add_int_option(app, "--ranks", opt.plan_ranks, 1, "with --dry-run: plan for N ranks (no mpirun needed)")
      ->type_name("N");
  app.add_option("--data-root", opt.data_root,
                 "read the data from DIR instead of the folder named in\nthe config's sources (e.g. the MNIST folder)")
      ->type_name("DIR");
  coco::add_int_option(app, "--max-iter", opt.max_iter, 0, "train N iterations in total (overrides max_iter)");
  auto* global = coco::add_int_option(app, "--batch-size", opt.batch_size, 1,
                                      "the GLOBAL training batch, all ranks together\n(overrides train_data's batch size)");
  coco::add_int_option(app, "--batch-size-per-rank", opt.batch_size_per_rank, 1,
                       "or each rank's share (as Caffe and insightface count):\nthe global batch is ranks x N")
      ->excludes(global);
  app.add_option("--metrics", opt.metrics,
                 "append JSON lines: one per display step\n{\"iter\",\"loss\",\"lr\",\"images_per_s\"}, one per "
                 "test\npass {\"iter\",\"test_loss\",\"test_accuracy\"} and one per\nvalidation set and pass "
                 "{\"iter\",\"val\",\"accuracy\",\"std\",\"xnorm\"}\n(tools/plot_metrics.py draws them)")
      ->type_name("PATH");
  app.add_option("--snapshot-prefix", opt.snapshot_prefix, "checkpoints are written to P_iter_N.ckpt")->type_name("P");
  app.add_option("--resume", opt.resume,
                                "continue from a checkpoint (iteration, solver state,\nparameters)")
      ->type_name("CKPT");
  app.add_option("--weights", opt.weights,
                                 "start from the parameters of a coco checkpoint or a\nCaffe .caffemodel (matched by "
                                 "layer name); a layer with\nparameters that the file does not hold is an error")
      ->type_name("FILE");
  app.add_option_function<std::vector<std::string>>(
         "--weights-keep-fillers",
         [&opt](const std::vector<std::string>& lists) {
           for (const auto& l : lists) add_layer_names(l, &opt.weights_keep_fillers);
         },
         "with --weights: these layers are not in the file and\nstart from their fillers (fine-tuning a new head)")
      ->type_name("L1[,L2...]")->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  coco::add_int_option(app, "--seed", opt.seed, 0, "random seed (overrides random_seed; default 1)");
  coco::add_int_option(app, "--threads", flags.threads, 0,
                       "CPU threads per rank for BLAS and coco's loops\n(default: OMP_NUM_THREADS if set, else the cores\n"
                       "divided among this node's ranks; more than the\ncores this process may use is clamped, with a "
                       "warning)");
  app.add_option("--device", flags.device,
                 "cpu (default), cuda (GPU = local rank) or cuda:N\n(needs a build with the CUDA backend)")
      ->type_name("DEV");
  app.add_flag("--debug", opt.debug,
               "one process (no MPI): after every layer's forward and\nbackward a synchronous CUDA error check and a "
               "NaN/Inf\nscan that names the iteration, layer and blob;\ndeterministic algorithms, so two runs give "
               "identical\nlosses");
  app.add_flag_callback("--debug-gradcheck", [&opt] { opt.debug = opt.debug_gradcheck = true; },
                        "with --debug: first check every loss layer's gradient\nagainst finite differences on the "
                        "first batch");
  coco::add_choice_option(app, "--precision", opt.precision, {"FP32", "BF16", "FP16"},
                          "convolutions and GEMMs on operands rounded to this\nformat, summed in fp32 (overrides the "
                          "solver's\nprecision; FP16 adds dynamic loss scaling); on a CPU\nthe 16-bit formats are "
                          "emulated, slower than FP32")
      ->type_name("P");
  coco::add_choice_option(app, "--on-nonfinite", flags.on_nonfinite, {"stop", "skip"},
                          "a step whose loss or gradient is NaN/Inf: stop\n(default; names the layer, writes no "
                          "checkpoint after\nthe last good one) or skip (no update; counted and\nlogged)")
      ->type_name("ACTION");
  coco::add_number_option(app, "--comm-timeout", flags.comm_timeout,
                          "seconds one collective may block before the rank\nends itself naming the call (a dead or cut-off "
                          "peer;\ndefault: COCO_COMM_TIMEOUT if set, else 600; 0: no\nbound); give the same value to every rank")
      ->type_name("S");
}

// --threads; else OMP_NUM_THREADS, which OpenMP reads itself (0: leave it); else,
// under mpirun, the node's cores divided among its ranks, so ranks sharing a node
// do not oversubscribe it; else (one process) OpenMP's default, every core.
int threads_per_rank(int asked, coco::Communicator& comm) {
  if (asked > 0) return asked;
  const char* env = std::getenv("OMP_NUM_THREADS");
  if ((env && *env) || comm.size() == 1) return 0;
  const int local = static_cast<coco::MpiCommunicator&>(comm).local_size();
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(local, 1));
}

// The rules across flags, in the words the hand-written parser used.
void check_train_flags(const TrainFlags& flags) {
  const coco::TrainOptions& opt = flags.opt;
  if (flags.comm_timeout < 0)
    throw coco::UsageError{"--comm-timeout takes seconds >= 0 (0: no bound)"};
  if (!opt.resume.empty() && !opt.weights.empty())
    throw coco::UsageError{"--resume and --weights exclude each other"};
  if (!opt.weights_keep_fillers.empty() && opt.weights.empty())
    throw coco::UsageError{"--weights-keep-fillers goes with --weights"};
  if (opt.plan_ranks > 0 && !opt.dry_run) throw coco::UsageError{"--ranks goes with --dry-run"};
}

}  // namespace

int main(int argc, char** argv) {
  TrainFlags flags;
  CLI::App app{"", "coco-train"};
  add_train_flags(app, flags);
  if (const auto code = coco::parse_flags(app, argc, argv, [&] { check_train_flags(flags); })) return *code;
  coco::TrainOptions& opt = flags.opt;
  opt.skip_nonfinite = flags.on_nonfinite == "skip";
  int threads = flags.threads;
  const std::string device = flags.device;

  std::unique_ptr<coco::MpiRuntime> mpi;
  std::unique_ptr<coco::Communicator> comm;
  int rank = 0, size = 1;
  try {
    if (!std::isnan(flags.comm_timeout)) coco::set_comm_timeout_s(flags.comm_timeout);
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
    coco::set_num_threads(threads_per_rank(threads, *comm));
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
