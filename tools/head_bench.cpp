// coco-bench head: the CocoLoss head, timed against its GEMM floor, or run once on
// given inputs for a cross-framework check.
//
// Timing: one JSON line per shape {"M","D","K","ranks","head_s","gemm_floor_s",
// "ratio","peak_rss_mb"}. head_s is the best of `repeats` forward+backward passes
// (train phase: the fused head does both in one call) over generated inputs; under
// mpirun the global batch M is split over the ranks and the classes are sharded.
// gemm_floor_s is the best time of the head's three GEMMs at this rank's shape --
// z = f ĉᵀ (M x K_r x D), Gᵀ f and G ĉ -- done as plain calls of the same BLAS in the
// same process, over chunks of the head's width (CPU), so the ratio compares like
// with like. With --sample-rate r < 1
// the head samples classes and the floor is the same three GEMMs at ceil(r K_r)
// classes. The line also gives the rank's bytes per step through each collective
// (one untimed step) and which softmax shift ran.
//
// With --device cuda[:N] the head runs on the GPU (one per rank under mpirun, its
// collectives over NCCL) and the floor is the same three GEMMs in cuBLAS; both are
// timed with CUDA events on the compute stream. The line adds "device" and
// "peak_device_mb", the caching allocator's peak of bytes handed out for this shape
// while the head ran (inputs, centroids, scratch and logits cache; before the
// floor's buffers).
//
// --precision BF16|FP16 rounds the head's GEMM operands (solver precision) and the
// floor's alike (the rounding's copies included on both sides); the line adds
// "precision". On a CPU that is the emulation: it measures the rounding's cost,
// not a speed-up.
//
// Check: --features X.npy (M x D float32), --centroids C.npy (K x D float32),
// --labels Y.npy (M int64) and --scale A run one forward and backward and write
// loss.npy, grad_features.npy and grad_centroids.npy to --dump DIR. Under mpirun
// every rank reads the inputs and keeps its share of the rows and its shard of the
// classes, as the trainer splits them; rank 0 gathers the feature gradient in row
// order and the centroid gradient in class order and writes the same three files.
#include "tools/head_bench.h"

#include <chrono>
#include <cmath>
#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/common.h"
#include "engine/config.h"
#include "engine/cuda_math.h"
#include "engine/cuda_runtime.h"
#include "engine/math.h"
#include "engine/memory_plan.h"
#include "engine/rng.h"
#include "layers/class_sampler.h"
#include "layers/coco_loss_layer.h"
#include "tools/embed/npy.h"

#if COCO_WITH_CUDA
#include <cuda_runtime_api.h>

#include "engine/gpu_check.h"  // after the CUDA header, whose part it enables
#endif

namespace coco {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double peak_rss_mb() { return static_cast<double>(peak_resident_bytes()) / (1 << 20); }

proto::LayerParameter head_param(const HeadBenchOptions& o, int64_t K, float scale) {
  std::ostringstream s;
  s.precision(9);
  s << "name: \"head\" type: \"CocoLoss\" coco_loss_param { num_output: " << K << " chunk_size: " << o.chunk
    << " logits_cache_mb: " << o.cache_mb << " logit_type: " << o.logit_type
    << " softmax_shift: " << o.softmax_shift << " sample_rate: " << o.sample_rate;
  if (o.logit_type == "COSINE") {
    if (scale > 0)
      s << " scale: " << scale;
    else
      s << " auto_scale: true target_probability: 0.99";
  }
  if (o.margin_type != "NONE") s << " margin_type: " << o.margin_type << " margin: " << o.margin;
  s << " }";
  proto::LayerParameter p;
  parse_text(s.str(), "<coco-bench head>", &p);
  return p;
}

// Times work queued on the current device's compute stream with CUDA events.
class DeviceTimer {
 public:
#if COCO_WITH_CUDA
  DeviceTimer() {
    COCO_CUDA_CHECK(cudaEventCreate(&start_));
    COCO_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~DeviceTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  void start() { COCO_CUDA_CHECK(cudaEventRecord(start_, cuda::stream())); }
  // Seconds since start(), waiting for the stream to get there.
  double stop() {
    COCO_CUDA_CHECK(cudaEventRecord(stop_, cuda::stream()));
    cuda::wait(cuda::stream(), "coco-bench head's timed pass");
    float ms = 0;
    COCO_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return ms / 1e3;
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
#else
  DeviceTimer() { COCO_THROW("this coco build has no CUDA backend (configure with COCO_WITH_CUDA=ON)"); }
  void start() {}
  double stop() { return 0; }
#endif
};

// Host values into a blob's data on any device (the one explicit copy).
void set_data(Blob& b, const std::vector<float>& v) {
  Tensor host(b.shape());
  std::copy(v.begin(), v.end(), host.data());
  b.data().copy_from(host);
}

struct Head {
  LayerContext ctx;
  Rng rng{7};
  std::unique_ptr<CocoLossLayer> layer;
  Blob x, y, loss;
  // m of the global batch's rows on this rank (its shard_range share).
  Head(Communicator& comm, const proto::LayerParameter& p, int64_t m, int64_t global_m, int64_t d, Device dev,
       Precision precision = Precision::kFP32)
      : x({m, d}, dev), y({m}, dev), loss(Shape{}, dev) {
    ctx.comm = &comm;
    ctx.global_batch = global_m;
    ctx.precision = precision;
    layer = std::make_unique<CocoLossLayer>(p);
    if (dev == Device::kCPU) {
      layer->setup({&x, &y}, {&loss}, &ctx, rng);
      return;
    }
    // The filler runs on the host (as in a Net, which then moves the parameters):
    // set up on host blobs, move the centroids, reshape on the device blobs.
    Blob hx({m, d}), hy({m}), hloss;
    layer->setup({&hx, &hy}, {&hloss}, &ctx, rng);
    auto c = std::make_shared<Blob>();
    c->set_device(dev);
    if (!layer->blobs()[0]->has_diff()) c->drop_diff();  // a sampling head's: no K_r x D diff
    c->reshape(layer->blobs()[0]->shape());
    c->data().copy_from(layer->blobs()[0]->data());
    layer->blobs()[0] = c;
    layer->reshape({&x, &y}, {&loss});
  }
  void step() {
    // (A sampling head keeps no centroid diff: it writes its sampled rows' own.)
    if (layer->blobs()[0]->has_diff()) layer->blobs()[0]->diff().zero();
    layer->forward({&x, &y}, {&loss});
    loss.diff().fill(1.f);  // the loss weight, as the Net seeds it
    layer->backward({&loss}, {true, false}, {&x, &y});
  }
};

struct CheckInputs {
  NpyArray X, C, Y;
  int64_t M = 0, D = 0, K = 0;
};

CheckInputs read_check_inputs(const HeadBenchOptions& o) {
  if (o.features.empty() || o.centroids.empty() || o.labels.empty() || o.dump_dir.empty())
    COCO_THROW("coco-bench head: --features, --centroids, --labels and --dump go together");
  if (o.logit_type == "COSINE" && !(o.scale > 0)) COCO_THROW("coco-bench head: --scale A (> 0) is required");
  CheckInputs in{read_npy(o.features), read_npy(o.centroids), read_npy(o.labels)};
  const NpyArray &X = in.X, &C = in.C, &Y = in.Y;
  if (X.type != NpyType::kFloat32 || X.shape.size() != 2) COCO_THROW(o.features, ": expected a float32 M x D array");
  if (C.type != NpyType::kFloat32 || C.shape.size() != 2 || C.shape[1] != X.shape[1])
    COCO_THROW(o.centroids, ": expected a float32 K x D array with D = ", X.shape[1]);
  if (Y.type != NpyType::kInt64 || Y.shape.size() != 1 || Y.shape[0] != X.shape[0])
    COCO_THROW(o.labels, ": expected int64 labels, one per feature row (", X.shape[0], ")");
  in.M = X.shape[0];
  in.D = X.shape[1];
  in.K = C.shape[0];
  require_finite(X.f32, in.D, o.features, "the head needs finite inputs");
  require_finite(C.f32, in.D, o.centroids, "the head needs finite inputs");
  return in;
}

// Rows [r.start, r.start + r.count) of a row-major matrix with `cols` columns.
std::vector<float> rows_of(const std::vector<float>& m, ShardRange r, int64_t cols) {
  return {m.begin() + r.start * cols, m.begin() + (r.start + r.count) * cols};
}

// Every rank's rows, `cols` wide and split by shard_range(total), in order on every rank.
std::vector<float> gather_rows(Communicator& comm, const std::vector<float>& mine, int64_t total, int64_t cols) {
  std::vector<float> all(total * cols);
  comm.all_gather(mine.data(), all.data(), shard_counts(total, comm.size(), cols));
  return all;
}

// comm: the host communicator the results are gathered over; head_comm: the head's.
int check_mode(Communicator& comm, Communicator& head_comm, const HeadBenchOptions& o) {
  const CheckInputs in = read_check_inputs(o);
  const int64_t M = in.M, D = in.D, K = in.K;
  const ShardRange rows = shard_range(M, comm.rank(), comm.size());
  Head h(head_comm, head_param(o, K, o.scale), rows.count, M, D, o.device);
  set_data(h.x, rows_of(in.X.f32, rows, D));
  // The labels as int32 class ids (exact past 2^24), their bits moved in a float buffer.
  std::vector<int32_t> ids(rows.count);
  for (int64_t i = 0; i < rows.count; ++i) {
    const int64_t y = in.Y.i64[rows.start + i];
    if (y < 0 || y >= K) COCO_THROW(o.labels, ": label ", y, " of row ", rows.start + i, " is not a class in [0, ", K, ")");
    ids[i] = static_cast<int32_t>(y);
  }
  std::vector<float> bits(ids.size());
  std::memcpy(bits.data(), ids.data(), ids.size() * sizeof(int32_t));
  h.y.set_element_type(ElementType::kInt32);
  set_data(h.y, bits);
  const ShardRange classes = h.layer->shard();
  if (classes.count != shard_range(K, comm.rank(), comm.size()).count)
    COCO_THROW("coco-bench head: rank ", comm.rank(), " holds ", classes.count, " classes, not its shard_range share");
  set_data(*h.layer->blobs()[0], rows_of(in.C.f32, classes, D));
  h.step();
  // Results to the host (explicit copies; a no-op on the CPU); the loss is global.
  const std::vector<float> loss = h.loss.data().to_vector();
  const std::vector<float> gx = gather_rows(comm, h.x.diff().to_vector(), M, D);
  const std::vector<float> gc = gather_rows(comm, h.layer->blobs()[0]->diff().to_vector(), K, D);
  if (!std::isfinite(loss[0]))
    COCO_THROW("coco-bench head: the loss is ", loss[0], " for finite inputs (", o.features, ", ", o.centroids,
               "); nothing was written");
  if (comm.rank() != 0) return 0;
  std::filesystem::create_directories(o.dump_dir);
  write_npy(o.dump_dir + "/loss.npy", {}, loss.data());
  write_npy(o.dump_dir + "/grad_features.npy", {M, D}, gx.data());
  write_npy(o.dump_dir + "/grad_centroids.npy", {K, D}, gc.data());
  const nlohmann::json summary{{"loss", loss[0]}, {"M", M},           {"D", D},
                               {"K", K},          {"ranks", comm.size()}, {"dump", o.dump_dir}};
  std::printf("%s\n", summary.dump().c_str());
  return 0;
}

// The bytes one step moves through the head's collectives on this rank, per kind:
// all-gather, all-reduce, reduce-scatter (one untimed step).
std::array<double, 3> bytes_of_one_step(Communicator& comm, Head& h) {
  comm.reset_stats();
  h.step();
  return {static_cast<double>(comm.stats(Collective::kAllGather).bytes),
          static_cast<double>(comm.stats(Collective::kAllReduce).bytes),
          static_cast<double>(comm.stats(Collective::kReduceScatter).bytes)};
}

// A step ends when its slowest rank does.
double slowest(Communicator& comm, double seconds) {
  float dt = static_cast<float>(seconds);
  comm.all_reduce(&dt, 1, ReduceOp::kMax);
  return dt;
}

// The head's timing on the CPU (wall clock) and its GEMM floor (OpenBLAS). Returns
// the peak RSS (MB) after the head ran, before the floor's buffers.
double time_cpu(Communicator& comm, Head& h, const HeadBenchOptions& o, int64_t M, int64_t D, int64_t Kr,
                double* head, double* floor) {
  *head = 1e30;
  for (int r = 0; r < o.repeats + 1; ++r) {
    comm.barrier();
    const auto t0 = Clock::now();
    h.step();
    const double dt = slowest(comm, since(t0));
    if (r > 0) *head = std::min(*head, dt);
  }
  const double rss = peak_rss_mb();
  // The floor: the three GEMMs at this rank's shard (global M rows), over chunks of
  // the head's width (the same FLOPs; an M x K_r array at millions of classes would
  // not fit the machine the head itself fits).
  const int64_t T = o.chunk > 0 ? std::min<int64_t>(o.chunk, Kr) : Kr;
  std::vector<float> f(M * D, 0.1f), c(T * D, 0.2f), z(M * T), gc(T * D), gf(M * D);
  *floor = 1e30;
  for (int r = 0; r < o.repeats + 1; ++r) {
    const auto t0 = Clock::now();
    for (int64_t c0 = 0; c0 < Kr; c0 += T) {
      const int64_t t = std::min(T, Kr - c0);
      cpu_gemm_at(o.precision, Trans::kNo, Trans::kYes, M, t, D, 1.f, f.data(), c.data(), 0.f, z.data());
      cpu_gemm_at(o.precision, Trans::kYes, Trans::kNo, t, D, M, 1.f, z.data(), f.data(), 0.f, gc.data());
      cpu_gemm_at(o.precision, Trans::kNo, Trans::kNo, M, D, t, 1.f, z.data(), c.data(), c0 == 0 ? 0.f : 1.f,
                  gf.data());
    }
    if (r > 0) *floor = std::min(*floor, since(t0));
  }
  return rss;
}

// The same on the GPU: CUDA events around the head and around three cuBLAS GEMMs.
// Returns the allocator's peak (MB) while the head ran, before the floor's buffers.
double time_cuda(Communicator& comm, Head& h, const HeadBenchOptions& o, int64_t M, int64_t D, int64_t Kr,
                 double* head, double* floor) {
  DeviceTimer timer;
  *head = 1e30;
  for (int r = 0; r < o.repeats + 1; ++r) {
    cuda::synchronize("coco-bench head");  // nothing queued from the last pass
    comm.barrier();
    timer.start();
    h.step();
    const double dt = slowest(comm, timer.stop());
    if (r > 0) *head = std::min(*head, dt);
  }
  const double peak = static_cast<double>(cuda::memory_stats().peak_in_use) / (1 << 20);
  Tensor f({M, D}, Device::kCUDA), c({Kr, D}, Device::kCUDA), z({M, Kr}, Device::kCUDA),
      gc({Kr, D}, Device::kCUDA), gf({M, D}, Device::kCUDA);
  f.fill(0.1f);
  c.fill(0.2f);
  *floor = 1e30;
  for (int r = 0; r < o.repeats + 1; ++r) {
    timer.start();
    const Precision p = o.precision;
    cuda_gemm_at(p, Trans::kNo, Trans::kYes, M, Kr, D, 1.f, f.data(), c.data(), 0.f, z.data(), cuda::stream());
    cuda_gemm_at(p, Trans::kYes, Trans::kNo, Kr, D, M, 1.f, z.data(), f.data(), 0.f, gc.data(), cuda::stream());
    cuda_gemm_at(p, Trans::kNo, Trans::kNo, M, D, Kr, 1.f, z.data(), c.data(), 0.f, gf.data(), cuda::stream());
    const double dt = timer.stop();
    if (r > 0) *floor = std::min(*floor, dt);
  }
  return peak;
}

}  // namespace

int run_head_bench(Communicator& comm, const HeadBenchOptions& o, Communicator* head_comm) {
  Communicator& hc = head_comm ? *head_comm : comm;
  COCO_CHECK(hc.size() == comm.size() && hc.rank() == comm.rank(), "coco-bench head: the head's communicator has rank ",
             hc.rank(), " of ", hc.size(), ", the job's ", comm.rank(), " of ", comm.size());
  if (!o.features.empty() || !o.dump_dir.empty()) return check_mode(comm, hc, o);
  const bool gpu = o.device == Device::kCUDA;
  auto shapes = o.shapes;
  if (shapes.empty()) shapes = {{256, 512, 85742}, {512, 512, 100000}};
  for (const auto& [M, D, K] : shapes) {
    const ShardRange mine = shard_range(M, comm.rank(), comm.size());
    if (gpu) {
      cuda::empty_cache();  // the last shape's buffers are free: give them back
      cuda::reset_peak_memory_stats();
    }
    Head h(hc, head_param(o, K, o.scale), mine.count, M, D, o.device, o.precision);
    std::vector<float> x(mine.count * D), y(mine.count);
    for (int64_t i = 0; i < mine.count * D; ++i) x[i] = uniform01(3, comm.rank(), i) - 0.5f;
    for (int64_t i = 0; i < mine.count; ++i) y[i] = static_cast<float>(hash3(4, comm.rank(), i) % static_cast<uint64_t>(K));
    set_data(h.x, x);
    set_data(h.y, y);
    // The floor's width: the classes the head computes logits for (the sampled rows
    // with sample_rate < 1: ceil(rate K_r), as the batch's few positives seldom add).
    const int64_t Kr = o.sample_rate < 1 ? sampled_class_count(h.layer->shard().count, o.sample_rate, 0)
                                         : h.layer->shard().count;
    const std::array<double, 3> bytes = bytes_of_one_step(hc, h);
    double head = 0, floor = 0;
    float rss = 0, pk = 0;  // the head's peaks, before the floor's buffers
    if (gpu) {
      pk = static_cast<float>(time_cuda(comm, h, o, M, D, Kr, &head, &floor));
      rss = static_cast<float>(peak_rss_mb());
    } else {
      rss = static_cast<float>(time_cpu(comm, h, o, M, D, Kr, &head, &floor));
    }
    const float hd = static_cast<float>(head);
    float fl = static_cast<float>(floor);
    comm.all_reduce(&fl, 1, ReduceOp::kMax);
    comm.all_reduce(&rss, 1, ReduceOp::kMax);
    if (gpu) comm.all_reduce(&pk, 1, ReduceOp::kMax);
    if (comm.rank() == 0) {
      std::printf("{\"M\": %lld, \"D\": %lld, \"K\": %lld, \"ranks\": %d, \"head_s\": %.4f, \"gemm_floor_s\": %.4f, "
                  "\"ratio\": %.3f, \"peak_rss_mb\": %.0f, \"centroid_shard_mb\": %.1f, \"logit_type\": \"%s\", "
                  "\"margin_type\": \"%s\", \"softmax_shift\": \"%s\", \"sample_rate\": %g, \"floor_classes\": %lld, "
                  "\"bytes_per_step\": {\"all_gather\": %.0f, \"all_reduce\": %.0f, \"reduce_scatter\": %.0f}",
                  static_cast<long long>(M), static_cast<long long>(D), static_cast<long long>(K), comm.size(),
                  static_cast<double>(hd), static_cast<double>(fl), static_cast<double>(hd) / fl,
                  static_cast<double>(rss), h.layer->shard().count * D * 4.0 / (1 << 20), o.logit_type.c_str(), o.margin_type.c_str(),
                  h.layer->used_fixed_shift() ? "fixed" : "running max", static_cast<double>(o.sample_rate),
                  static_cast<long long>(Kr), bytes[0], bytes[1], bytes[2]);
      if (o.precision != Precision::kFP32) std::printf(", \"precision\": \"%s\"", precision_name(o.precision));
      if (gpu)
        std::printf(", \"device\": \"cuda:%d\", \"peak_device_mb\": %.1f", cuda::current_device(),
                    static_cast<double>(pk));
      std::printf("}\n");
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace coco
