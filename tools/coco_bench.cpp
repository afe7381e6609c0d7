// coco-bench: performance measurements that check their own setup (Google Benchmark).
//
//   coco-bench [--config FILE] [--threads N] [benchmark flags...]
//   coco-bench comm [...], coco-bench head [...]  (each with --help)
//
// BM_TrainStep/B: one full training step (forward, backward, SGD update) of the
// net in FILE (default configs/mnist_coco.prototxt, the seed's LeNet++ with the COCO
// head) at batch B on random inputs; reports images/s. BM_Sgemm: OpenBLAS SGEMM at
// the shape of LeNet++'s largest convolution GEMM, the machine's floor for the
// same work, reported in FLOP/s so the two can be read side by side in one run.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "comm/communicator.h"
#include "comm/mpi_communicator.h"
#include "comm/nccl_communicator.h"
#include "engine/cli.h"
#include "engine/common.h"
#include "tools/comm_bench.h"
#include "tools/head_bench.h"
#include "engine/config.h"
#include "engine/cuda_runtime.h"
#include "engine/math.h"
#include "engine/net.h"
#include "engine/solver.h"
#include "engine/trainer.h"

namespace {

std::string g_config = std::string(COCO_SOURCE_DIR) + "/configs/mnist_coco.prototxt";

// Fixed inputs for a benchmark: data uniform in [-0.5, 0.5), labels i mod classes.
void fill_bench_inputs(coco::Net& net, int classes) {
  std::mt19937 g(7);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  coco::Blob* data = net.input_blobs()[0];
  for (int64_t i = 0; i < data->count(); ++i) data->mutable_data()[i] = u(g);
  if (net.input_blobs().size() < 2) return;
  coco::Blob* label = net.input_blobs()[1];
  for (int64_t i = 0; i < label->count(); ++i) label->mutable_data()[i] = static_cast<float>(i % classes);
}

void train_step(benchmark::State& state, coco::Device dev) {
  const int64_t batch = state.range(0);
  coco::TrainConfig cfg = coco::load_train_config(g_config);
  coco::set_input_batch(&cfg.net, batch);
  coco::LocalCommunicator comm;
  coco::Net net(cfg.net, coco::Phase::kTrain, &comm, 1, cfg.net_origin);
  coco::SgdSolver solver(cfg.solver, &net);
  fill_bench_inputs(net, 10);
  // On CUDA the inputs are moved once with the net; every step reads the loss back
  // to the host, as the trainer does, so the time includes the stream's completion.
  net.to_device(dev);
  solver.to_device(dev);
  int64_t it = 0;
  // One warm-up step: buffers reach their steady-state sizes.
  net.clear_param_diffs();
  net.forward_backward();
  solver.apply_update(it++);
  for (auto _ : state) {
    net.set_iter(it);
    net.clear_param_diffs();
    benchmark::DoNotOptimize(net.forward_backward());
    solver.apply_update(it++);
  }
  state.SetItemsProcessed(state.iterations() * batch);
  if (std::getenv("COCO_BENCH_LAYERS")) {
    net.enable_timing(true);
    for (int i = 0; i < 5; ++i) {
      net.clear_param_diffs();
      net.forward_backward();
    }
    for (size_t l = 0; l < net.num_layers(); ++l)
      std::fprintf(stderr, "%-10s %-14s fwd %7.2f ms  bwd %7.2f ms\n", net.layer(l).name().c_str(), net.layer(l).type(),
                   net.forward_seconds()[l] * 200, net.backward_seconds()[l] * 200);
  }
  state.counters["images_per_s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}
// The test phase's forward of the config's net at batch B (what coco-export and the
// validation passes run); COCO_BENCH_LAYERS=1 adds the time per layer type.
void BM_Inference(benchmark::State& state) {
  const int64_t batch = state.range(0);
  coco::TrainConfig cfg = coco::load_train_config(g_config);
  coco::set_input_batch(&cfg.net, batch);
  coco::LocalCommunicator comm;
  coco::Net net(cfg.net, coco::Phase::kTest, &comm, 1, cfg.net_origin);
  fill_bench_inputs(net, 2);
  net.forward();
  for (auto _ : state) benchmark::DoNotOptimize(net.forward());
  if (std::getenv("COCO_BENCH_LAYERS")) {
    net.enable_timing(true);
    for (int i = 0; i < 5; ++i) net.forward();
    std::map<std::string, double> by_type;
    for (size_t l = 0; l < net.num_layers(); ++l) by_type[net.layer(l).type()] += net.forward_seconds()[l] * 200;
    for (const auto& [type, ms] : by_type) std::fprintf(stderr, "%-14s fwd %8.2f ms\n", type.c_str(), ms);
  }
  state.counters["images_per_s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Inference)->Arg(16)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

void BM_TrainStep(benchmark::State& state) { train_step(state, coco::Device::kCPU); }
BENCHMARK(BM_TrainStep)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(5.0);
// The same step on the GPU (registered in main() where a CUDA device is present).
void BM_TrainStepCuda(benchmark::State& state) { train_step(state, coco::Device::kCUDA); }

// C (32, 100352) = A (32, 800) B (800, 100352): conv1+'s forward GEMM at batch 128.
void BM_Sgemm(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  std::vector<float> a(M * K, 0.5f), b(K * N, 0.25f), c(M * N);
  for (auto _ : state) {
    coco::cpu_gemm(coco::Trans::kNo, coco::Trans::kNo, M, N, K, 1.f, a.data(), b.data(), 0.f, c.data());
    benchmark::ClobberMemory();
  }
  if (c[0] != 0.5f * 0.25f * K) state.SkipWithError("SGEMM result is wrong");
  state.counters["flops"] = benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Sgemm)->Args({32, 128 * 784, 800})->Args({128, 128 * 49, 3200})->Unit(benchmark::kMillisecond)->UseRealTime();

const char* kUsage = R"(usage: coco-bench [--config SOLVER] [--threads N] [Google Benchmark flags]
       [mpirun -np N] coco-bench comm [--min-bytes B] [--max-bytes B] [--iters N]
       [mpirun -np N] coco-bench head [...]   (coco-bench head --help)
  comm            algorithm and bus bandwidth of every collective per size, checking
                  every element of every result (exit 1 on a wrong one)
                  (coco-bench comm --help)
  BM_TrainStep/B  a full training step of the config's net at batch B (images/s)
  BM_Inference/B  the test phase's forward of the config's net at batch B (images/s)
  BM_TrainStepCuda/B  the same on cuda:0 (only where a CUDA device is present)
  BM_Sgemm/M/N/K  OpenBLAS SGEMM at LeNet++ convolution shapes (FLOP/s)
  e.g. coco-bench --benchmark_filter=TrainStep
)";

const char* kBenchFooter =
    "Any other flag goes to Google Benchmark (--benchmark_filter=REGEX,\n"
    "--benchmark_list_tests, --benchmark_format=json, ...).";

const char* kCommUsage = R"(usage: [mpirun -np N] coco-bench comm [--min-bytes B] [--max-bytes B] [--iters N]

Algorithm and bus bandwidth (nccl-tests' definitions) of all_reduce, all_gather,
reduce_scatter and broadcast at every size from --min-bytes to --max-bytes (x4
each step), checking every element of every result on every rank: exit 1 on a
wrong one.
)";

const char* kHeadUsage = R"(usage: [mpirun -np N] coco-bench head [--M m] [--D d] [--K k] [options]
       [mpirun -np N] coco-bench head --features X.npy --centroids C.npy --labels Y.npy --scale A --dump DIR [options]

Times the CocoLoss head's forward+backward against its three GEMMs (same BLAS,
same process) and prints one JSON line per shape: {"M","D","K","ranks",
"head_s","gemm_floor_s","ratio","peak_rss_mb",...}. Default shapes: (256, 512,
85742) and (512, 512, 100000); --M/--D/--K give one shape instead. Under mpirun
the batch is split and the classes sharded over the ranks. The line also gives
"softmax_shift" (which ran), "sample_rate", "floor_classes" (the floor's K_r:
ceil(rate K_r) when sampling) and rank 0's "bytes_per_step" per collective.

With --features (float32 M x D), --centroids (float32 K x D) and --labels (int64
M), runs one forward and backward and writes loss.npy, grad_features.npy and
grad_centroids.npy to DIR, to check the head against other implementations.
Under mpirun each rank takes its share of the rows and its shard of the classes,
and rank 0 writes the gathered results: the same three files as one process.
)";

int comm_main(int argc, char** argv) {
  int64_t min_bytes = 1024, max_bytes = 64 << 20;
  int iters = 5;
  CLI::App app{"", "coco-bench comm"};
  coco::describe_tool(app, kCommUsage);
  coco::add_int_option(app, "--min-bytes", min_bytes, 1, "smallest message, in bytes (default 1024)")->type_name("B");
  coco::add_int_option(app, "--max-bytes", max_bytes, 1, "largest message, in bytes (default 64 MiB)")->type_name("B");
  coco::add_int_option(app, "--iters", iters, 1, "timed runs per collective and size (default 5)");
  const auto check = [&] {
    if (max_bytes < min_bytes)
      throw coco::UsageError{"--max-bytes (" + std::to_string(max_bytes) + ") is below --min-bytes (" +
                             std::to_string(min_bytes) + ")"};
  };
  if (const auto rc = coco::parse_flags(app, argc - 1, argv + 1, check)) return *rc;
  std::unique_ptr<coco::MpiRuntime> mpi;
  if (coco::launched_by_mpi()) mpi = std::make_unique<coco::MpiRuntime>(&argc, &argv);
  auto comm = coco::make_cpu_communicator();
  return coco::run_or_abort_job(comm->size(), [&] { return coco::run_comm_bench(*comm, min_bytes, max_bytes, iters); });
}

// What `coco-bench head` takes from the command line.
struct HeadFlags {
  coco::HeadBenchOptions o;
  int64_t M = -1, D = -1, K = -1;
  int threads = 2;
  coco::DeviceSpec device;
};

void add_head_flags(CLI::App& app, HeadFlags& f) {
  coco::HeadBenchOptions& o = f.o;
  coco::describe_tool(app, kHeadUsage, 24);
  coco::add_int_option(app, "--M", f.M, 1, "global batch of the one timed shape (default 256)")->type_name("m");
  coco::add_int_option(app, "--D", f.D, 1, "embedding size of the one timed shape (default 512)")->type_name("d");
  coco::add_int_option(app, "--K", f.K, 1, "classes of the one timed shape (default 85742)")->type_name("k");
  app.add_option("--features", o.features, "check: the features, float32 M x D")->type_name("X.npy");
  app.add_option("--centroids", o.centroids, "check: the centroids, float32 K x D")->type_name("C.npy");
  app.add_option("--labels", o.labels, "check: the labels, int64 M")->type_name("Y.npy");
  app.add_option("--dump", o.dump_dir, "check: loss.npy, grad_features.npy and grad_centroids.npy\ngo here")
      ->type_name("DIR");
  coco::add_number_option(app, "--scale", o.scale, "alpha (default when timing: auto for p = 0.99)")->type_name("A");
  app.add_option("--margin-type", o.margin_type, "NONE (default), COSFACE or ARCFACE")->type_name("T");
  coco::add_number_option(app, "--margin", o.margin, "the margin of --margin-type")->type_name("m");
  app.add_option("--logit-type", o.logit_type, "COSINE (default) or INNER_PRODUCT (plain softmax)")->type_name("T");
  app.add_option("--softmax-shift", o.softmax_shift,
                 "AUTO (default: COSINE logits take the fixed shift alpha)\nor RUNNING_MAX; the line's \"softmax_shift\" "
                 "says which ran")
      ->check(CLI::IsMember({"AUTO", "RUNNING_MAX"}))
      ->type_name("S");
  coco::add_number_option(app, "--sample-rate", o.sample_rate,
                          "class sampling: the share of each rank's classes a step\ncomputes, in (0, 1] (default 1: all); "
                          "the floor is then\nthe GEMMs at ceil(rate K_r) classes")
      ->type_name("r");
  app.add_option_function<std::string>(
         "--precision",
         [&o](const std::string& v) { coco::precision_from_name(v, &o.precision); },
         "FP32 (default), BF16 or FP16: the GEMMs' operands (and the\nfloor's) rounded to it, fp32 sums")
      ->check(CLI::IsMember({"FP32", "BF16", "FP16"}))
      ->type_name("P");
  coco::add_int_option(app, "--chunk", o.chunk, 0, "classes per chunk (default 8192)");
  coco::add_number_option(app, "--cache-mb", o.cache_mb,
                          "logits kept between forward and backward (default 256;\n0: no logits cache)")
      ->type_name("MB");
  coco::add_int_option(app, "--repeats", o.repeats, 1, "timed runs, best taken (default 3)");
  coco::add_int_option(app, "--threads", f.threads, 1, "CPU threads (default 2)");
  app.add_option_function<std::string>(
         "--device",
         [&f](const std::string& v) {
           try {
             f.device = coco::DeviceSpec::parse(v);
           } catch (const coco::Error&) {
             throw coco::UsageError{"--device takes cpu, cuda or cuda:N, got '" + v + "'"};
           }
         },
         "cpu (default), cuda or cuda:N: the head on GPU N (cuBLAS floor,\nCUDA-event timings, adds \"device\" and "
         "\"peak_device_mb\"); under\nmpirun each rank takes GPU N + its local rank, joined by NCCL")
      ->type_name("D");
}

// The rules across flags the table cannot say.
void check_head_flags(const CLI::App& app, const HeadFlags& f) {
  if (app.count("--scale") > 0 && !(f.o.scale > 0))
    throw coco::UsageError{"--scale takes a number > 0 (leave it out for auto scale)"};
  if (f.o.cache_mb < 0) throw coco::UsageError{"--cache-mb takes a number >= 0 (0: no logits cache)"};
  if (!(f.o.sample_rate > 0 && f.o.sample_rate <= 1))
    throw coco::UsageError{"--sample-rate takes a number in (0, 1]"};
}

int head_main(int argc, char** argv) {
  HeadFlags f;
  CLI::App app{"", "coco-bench head"};
  add_head_flags(app, f);
  if (const auto rc = coco::parse_flags(app, argc - 1, argv + 1, [&] { check_head_flags(app, f); })) return *rc;
  coco::HeadBenchOptions& o = f.o;
  const coco::DeviceSpec device = f.device;
  if (f.M > 0 || f.D > 0 || f.K > 0)
    o.shapes = {{f.M > 0 ? f.M : 256, f.D > 0 ? f.D : 512, f.K > 0 ? f.K : 85742}};
  std::unique_ptr<coco::MpiRuntime> mpi;
  if (coco::launched_by_mpi()) mpi = std::make_unique<coco::MpiRuntime>(&argc, &argv);
  auto comm = coco::make_cpu_communicator();
  coco::set_num_threads(f.threads);
  coco::set_flush_denormals(true);
  o.device = device.type;
  return coco::run_or_abort_job(comm->size(), [&] {
    if (device.type == coco::Device::kCPU) return coco::run_head_bench(*comm, o);
    // One GPU per rank; several ranks join over NCCL (the head's collectives take
    // device pointers), timings are reduced over the CPU communicator.
    const int gpu = device.index + comm->local_rank();
    coco::cuda::set_device(gpu);
    if (comm->size() == 1) return coco::run_head_bench(*comm, o);
    auto* mpi = dynamic_cast<coco::MpiCommunicator*>(comm.get());
    COCO_CHECK(mpi != nullptr, "coco-bench head: several ranks without MPI");
    coco::NcclCommunicator nccl(*mpi, gpu);
    return coco::run_head_bench(*comm, o, &nccl);
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "comm") return comm_main(argc, argv);
  if (argc > 1 && std::string(argv[1]) == "head") return head_main(argc, argv);
  int threads = 2;
  CLI::App app{"", "coco-bench"};
  coco::describe_tool(app, kUsage);
  app.footer(kBenchFooter);
  app.add_option("--config", g_config, "the net of BM_TrainStep (default configs/mnist_coco.prototxt)")
      ->type_name("SOLVER");
  coco::add_int_option(app, "--threads", threads, 0, "CPU threads (default 2)");
  app.allow_extras();  // Google Benchmark's own flags: handed on below
  if (const auto rc = coco::parse_flags(app, argc, argv)) return *rc;
  std::vector<std::string> extras = app.remaining();
  std::vector<char*> rest{argv[0]};
  for (auto& a : extras) rest.push_back(a.data());
  coco::set_num_threads(threads);
  coco::set_flush_denormals(true);
  if (coco::cuda::available())
    benchmark::RegisterBenchmark("BM_TrainStepCuda", BM_TrainStepCuda)
        ->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  if (benchmark::ReportUnrecognizedArguments(n, rest.data())) return 2;
  try {
    benchmark::RunSpecifiedBenchmarks();
  } catch (const std::exception& e) {
    std::cerr << "coco-bench: " << e.what() << "\n";
    return 1;
  }
  benchmark::Shutdown();
  return 0;
}
