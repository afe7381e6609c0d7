// coco-bench head: the CocoLoss head, timed against its GEMM floor, or run once on
// given inputs for a cross-framework check.
//
// Timing: one JSON line per shape {"M","D","K","ranks","head_s","gemm_floor_s",
// "ratio","peak_rss_mb"}. head_s is the best of `repeats` forward+backward passes
// (train phase: the fused head does both in one call) over generated inputs; under
// mpirun the global batch M is split over the ranks and the classes are sharded.
// gemm_floor_s is the best time of the head's three GEMMs at this rank's shape --
// z = f ĉᵀ (M x K_r x D), Gᵀ f and G ĉ -- done as three plain calls of the same BLAS
// in the same process, so the ratio compares like with like.
//
// Check: --features X.npy (M x D float32), --centroids C.npy (K x D float32),
// --labels Y.npy (M int64) and --scale A run one forward and backward and write
// loss.npy, grad_features.npy and grad_centroids.npy to --dump DIR (one process).
#include "tools/head_bench.h"

#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

#include "engine/common.h"
#include "engine/config.h"
#include "engine/math.h"
#include "engine/rng.h"
#include "layers/coco_loss_layer.h"
#include "tools/embed/npy.h"

namespace coco {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;  // kilobytes on Linux
}

proto::LayerParameter head_param(const HeadBenchOptions& o, int64_t K, float scale) {
  std::ostringstream s;
  s.precision(9);
  s << "name: \"head\" type: \"CocoLoss\" coco_loss_param { num_output: " << K << " chunk_size: " << o.chunk
    << " logits_cache_mb: " << o.cache_mb << " logit_type: " << o.logit_type;
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

struct Head {
  LayerContext ctx;
  Rng rng{7};
  std::unique_ptr<CocoLossLayer> layer;
  Blob x, y, loss;
  Head(Communicator& comm, const proto::LayerParameter& p, int64_t m, int64_t d) : x({m, d}), y({m}) {
    ctx.comm = &comm;
    layer = std::make_unique<CocoLossLayer>(p);
    layer->setup({&x, &y}, {&loss}, &ctx, rng);
  }
  void step() {
    layer->blobs()[0]->diff().zero();
    layer->forward({&x, &y}, {&loss});
    loss.mutable_diff()[0] = 1.f;
    layer->backward({&loss}, {true, false}, {&x, &y});
  }
};

int check_mode(Communicator& comm, const HeadBenchOptions& o) {
  if (comm.size() != 1) COCO_THROW("coco-bench head --dump runs in one process");
  if (o.features.empty() || o.centroids.empty() || o.labels.empty() || o.dump_dir.empty())
    COCO_THROW("coco-bench head: --features, --centroids, --labels and --dump go together");
  if (o.logit_type == "COSINE" && !(o.scale > 0)) COCO_THROW("coco-bench head: --scale A (> 0) is required");
  const NpyArray X = read_npy(o.features), C = read_npy(o.centroids), Y = read_npy(o.labels);
  if (X.type != NpyType::kFloat32 || X.shape.size() != 2) COCO_THROW(o.features, ": expected a float32 M x D array");
  if (C.type != NpyType::kFloat32 || C.shape.size() != 2 || C.shape[1] != X.shape[1])
    COCO_THROW(o.centroids, ": expected a float32 K x D array with D = ", X.shape[1]);
  if (Y.type != NpyType::kInt64 || Y.shape.size() != 1 || Y.shape[0] != X.shape[0])
    COCO_THROW(o.labels, ": expected int64 labels, one per feature row (", X.shape[0], ")");
  const int64_t M = X.shape[0], D = X.shape[1], K = C.shape[0];
  Head h(comm, head_param(o, K, o.scale), M, D);
  std::copy(X.f32.begin(), X.f32.end(), h.x.mutable_data());
  for (int64_t i = 0; i < M; ++i) h.y.mutable_data()[i] = static_cast<float>(Y.i64[i]);
  std::copy(C.f32.begin(), C.f32.end(), h.layer->blobs()[0]->mutable_data());
  h.step();
  std::filesystem::create_directories(o.dump_dir);
  write_npy(o.dump_dir + "/loss.npy", {}, h.loss.cdata());
  write_npy(o.dump_dir + "/grad_features.npy", {M, D}, h.x.cdiff());
  write_npy(o.dump_dir + "/grad_centroids.npy", {K, D}, h.layer->blobs()[0]->cdiff());
  std::printf("{\"loss\": %.9g, \"M\": %lld, \"D\": %lld, \"K\": %lld, \"dump\": \"%s\"}\n", h.loss.cdata()[0],
              static_cast<long long>(M), static_cast<long long>(D), static_cast<long long>(K), o.dump_dir.c_str());
  return 0;
}

}  // namespace

int run_head_bench(Communicator& comm, const HeadBenchOptions& o) {
  if (!o.features.empty() || !o.dump_dir.empty()) return check_mode(comm, o);
  auto shapes = o.shapes;
  if (shapes.empty()) shapes = {{256, 512, 85742}, {512, 512, 100000}};
  for (const auto& [M, D, K] : shapes) {
    const ShardRange mine = shard_range(M, comm.rank(), comm.size());
    Head h(comm, head_param(o, K, o.scale), mine.count, D);
    for (int64_t i = 0; i < h.x.count(); ++i) h.x.mutable_data()[i] = uniform01(3, comm.rank(), i) - 0.5f;
    for (int64_t i = 0; i < mine.count; ++i)
      h.y.mutable_data()[i] = static_cast<float>(hash3(4, comm.rank(), i) % static_cast<uint64_t>(K));
    double head = 1e30;
    for (int r = 0; r < o.repeats + 1; ++r) {
      comm.barrier();
      const auto t0 = Clock::now();
      h.step();
      float dt = static_cast<float>(since(t0));
      comm.all_reduce(&dt, 1, ReduceOp::kMax);  // a step ends when its slowest rank does
      if (r > 0) head = std::min(head, static_cast<double>(dt));
    }
    float rss = static_cast<float>(peak_rss_mb());  // the head's peak, before the floor's buffers
    // The floor: the three GEMMs at this rank's shard (global M rows).
    const int64_t Kr = h.layer->shard().count;
    std::vector<float> f(M * D, 0.1f), c(Kr * D, 0.2f), z(M * Kr), gc(Kr * D), gf(M * D);
    double floor = 1e30;
    for (int r = 0; r < o.repeats + 1; ++r) {
      const auto t0 = Clock::now();
      cpu_gemm(Trans::kNo, Trans::kYes, M, Kr, D, 1.f, f.data(), c.data(), 0.f, z.data());
      cpu_gemm(Trans::kYes, Trans::kNo, Kr, D, M, 1.f, z.data(), f.data(), 0.f, gc.data());
      cpu_gemm(Trans::kNo, Trans::kNo, M, D, Kr, 1.f, z.data(), c.data(), 0.f, gf.data());
      if (r > 0) floor = std::min(floor, since(t0));
    }
    float fl = static_cast<float>(floor);
    comm.all_reduce(&fl, 1, ReduceOp::kMax);
    comm.all_reduce(&rss, 1, ReduceOp::kMax);
    if (comm.rank() == 0)
      std::printf("{\"M\": %lld, \"D\": %lld, \"K\": %lld, \"ranks\": %d, \"head_s\": %.4f, \"gemm_floor_s\": %.4f, "
                  "\"ratio\": %.3f, \"peak_rss_mb\": %.0f, \"centroid_shard_mb\": %.1f, \"logit_type\": \"%s\", "
                  "\"margin_type\": \"%s\"}\n",
                  static_cast<long long>(M), static_cast<long long>(D), static_cast<long long>(K), comm.size(), head,
                  static_cast<double>(fl), head / fl, static_cast<double>(rss), Kr * D * 4.0 / (1 << 20),
                  o.logit_type.c_str(), o.margin_type.c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace coco
