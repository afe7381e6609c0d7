// coco-bench: performance measurements that check their own setup (Google Benchmark).
//
//   coco-bench [--config FILE] [--threads N] [benchmark flags...]
//
// BM_TrainStep/B: one full training step (forward, backward, SGD update) of the
// net in FILE (default configs/mnist_coco.prototxt, the seed's LeNet++ with the COCO
// head) at batch B on random inputs; reports images/s. BM_Sgemm: OpenBLAS SGEMM at
// the shape of LeNet++'s largest convolution GEMM, the machine's floor for the
// same work, reported in FLOP/s so the two can be read side by side in one run.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <string>

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

void train_step(benchmark::State& state, coco::Device dev) {
  const int64_t batch = state.range(0);
  coco::TrainConfig cfg = coco::load_train_config(g_config);
  coco::set_input_batch(&cfg.net, batch);
  coco::LocalCommunicator comm;
  coco::Net net(cfg.net, coco::Phase::kTrain, &comm, 1, cfg.net_origin);
  coco::SgdSolver solver(cfg.solver, &net);
  std::mt19937 g(7);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  coco::Blob* data = net.input_blobs()[0];
  coco::Blob* label = net.input_blobs()[1];
  for (int64_t i = 0; i < data->count(); ++i) data->mutable_data()[i] = u(g);
  for (int64_t i = 0; i < label->count(); ++i) label->mutable_data()[i] = static_cast<float>(i % 10);
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

}  // namespace

const char* kHeadUsage = R"(usage: [mpirun -np N] coco-bench head [--M m] [--D d] [--K k] [options]
       coco-bench head --features X.npy --centroids C.npy --labels Y.npy --scale A --dump DIR [options]

Times the CocoLoss head's forward+backward against its three GEMMs (same BLAS,
same process) and prints one JSON line per shape: {"M","D","K","ranks",
"head_s","gemm_floor_s","ratio","peak_rss_mb",...}. Default shapes: (256, 512,
85742) and (512, 512, 100000); --M/--D/--K give one shape instead. Under mpirun
the batch is split and the classes sharded over the ranks.

With --features (float32 M x D), --centroids (float32 K x D) and --labels (int64
M), runs one forward and backward and writes loss.npy, grad_features.npy and
grad_centroids.npy to DIR, to check the head against other implementations.

  --scale A             alpha (default when timing: auto for p = 0.99)
  --margin-type T       NONE, COSFACE or ARCFACE   --margin m
  --logit-type T        COSINE (default) or INNER_PRODUCT (plain softmax)
  --chunk T             classes per chunk (default 8192)
  --cache-mb B          logits kept between forward and backward (default 256)
  --repeats N           timed runs, best taken (default 3)
  --threads N           CPU threads (default 2)
  --device D            cpu (default), cuda or cuda:N: the head on GPU N (cuBLAS floor,
                        CUDA-event timings, adds "device" and "peak_device_mb"); under
                        mpirun each rank takes GPU N + its local rank, joined by NCCL
)";

int comm_main(int argc, char** argv) {
  int64_t min_bytes = 1024, max_bytes = 64 << 20;
  int iters = 5;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--min-bytes" && i + 1 < argc) {
      min_bytes = std::atoll(argv[++i]);
    } else if (a == "--max-bytes" && i + 1 < argc) {
      max_bytes = std::atoll(argv[++i]);
    } else if (a == "--iters" && i + 1 < argc) {
      iters = std::atoi(argv[++i]);
    } else {
      std::cerr << "usage: [mpirun -np N] coco-bench comm [--min-bytes B] [--max-bytes B] [--iters N]\n";
      return a == "-h" || a == "--help" ? 0 : 2;
    }
  }
  if (min_bytes <= 0 || max_bytes < min_bytes || iters <= 0) {
    std::cerr << "coco-bench comm: need 0 < --min-bytes <= --max-bytes and --iters > 0\n";
    return 2;
  }
  std::unique_ptr<coco::MpiRuntime> mpi;
  if (coco::launched_by_mpi()) mpi = std::make_unique<coco::MpiRuntime>(&argc, &argv);
  auto comm = coco::make_cpu_communicator();
  return coco::run_or_abort_job(comm->size(), [&] { return coco::run_comm_bench(*comm, min_bytes, max_bytes, iters); });
}

int head_main(int argc, char** argv) {
  coco::HeadBenchOptions o;
  int64_t M = -1, D = -1, K = -1;
  int threads = 2;
  coco::DeviceSpec device;
  try {
    for (int i = 2; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&] { return coco::flag_value(argc, argv, i, a); };
      if (a == "--M") M = coco::parse_int_flag(a, value(), 1);
      else if (a == "--D") D = coco::parse_int_flag(a, value(), 1);
      else if (a == "--K") K = coco::parse_int_flag(a, value(), 1);
      else if (a == "--features") o.features = value();
      else if (a == "--centroids") o.centroids = value();
      else if (a == "--labels") o.labels = value();
      else if (a == "--dump") o.dump_dir = value();
      else if (a == "--scale") {
        o.scale = static_cast<float>(coco::parse_number_flag(a, value()));
        if (!(o.scale > 0)) throw coco::UsageError{"--scale takes a number > 0 (leave it out for auto scale)"};
      }
      else if (a == "--margin-type") o.margin_type = value();
      else if (a == "--margin") o.margin = static_cast<float>(coco::parse_number_flag(a, value()));
      else if (a == "--logit-type") o.logit_type = value();
      else if (a == "--repeats") o.repeats = static_cast<int>(coco::parse_int_flag(a, value(), 1));
      else if (a == "--chunk") o.chunk = coco::parse_int_flag(a, value(), 0);
      else if (a == "--cache-mb") {
        o.cache_mb = static_cast<float>(coco::parse_number_flag(a, value()));
        if (o.cache_mb < 0) throw coco::UsageError{"--cache-mb takes a number >= 0 (0: no logits cache)"};
      }
      else if (a == "--threads") threads = static_cast<int>(coco::parse_int_flag(a, value(), 1));
      else if (a == "--device") {
        const std::string v = value();
        try {
          device = coco::DeviceSpec::parse(v);
        } catch (const coco::Error&) {
          throw coco::UsageError{"--device takes cpu, cuda or cuda:N, got '" + v + "'"};
        }
      } else if (a == "-h" || a == "--help") {
        std::cout << kHeadUsage;
        return 0;
      } else {
        throw coco::UsageError{"unknown option '" + a + "'"};
      }
    }
  } catch (const coco::UsageError& e) {
    std::cerr << "coco-bench head: " << e.msg << "\n\n" << kHeadUsage;
    return 2;
  } catch (const std::exception& e) {  // std::stof on a non-number
    std::cerr << "coco-bench head: bad number: " << e.what() << "\n\n" << kHeadUsage;
    return 2;
  }
  if (M > 0 || D > 0 || K > 0) o.shapes = {{M > 0 ? M : 256, D > 0 ? D : 512, K > 0 ? K : 85742}};
  std::unique_ptr<coco::MpiRuntime> mpi;
  if (coco::launched_by_mpi()) mpi = std::make_unique<coco::MpiRuntime>(&argc, &argv);
  auto comm = coco::make_cpu_communicator();
  coco::set_num_threads(threads);
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

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "comm") return comm_main(argc, argv);
  if (argc > 1 && std::string(argv[1]) == "head") return head_main(argc, argv);
  int threads = 2;
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--config") && i + 1 < argc) {
      g_config = argv[++i];
    } else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "-h") || !std::strcmp(argv[i], "--help")) {
      std::cout << "usage: coco-bench [--config SOLVER] [--threads N (default 2)] [Google Benchmark flags]\n"
                   "       [mpirun -np N] coco-bench comm [--min-bytes B] [--max-bytes B] [--iters N]\n"
                   "       [mpirun -np N] coco-bench head [...]   (coco-bench head --help)\n"
                   "  comm            algorithm and bus bandwidth of every collective per size, checking\n"
                   "                  every element of every result (exit 1 on a wrong one)\n"
                   "  BM_TrainStep/B  a full training step of the config's net at batch B (images/s)\n"
                   "  BM_TrainStepCuda/B  the same on cuda:0 (only where a CUDA device is present)\n"
                   "  BM_Sgemm/M/N/K  OpenBLAS SGEMM at LeNet++ convolution shapes (FLOP/s)\n"
                   "  e.g. coco-bench --benchmark_filter=TrainStep\n";
      return 0;
    } else {
      rest.push_back(argv[i]);
    }
  }
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
