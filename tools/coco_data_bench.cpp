// coco-data-bench: how fast the face data path is, and that it is right.
//
//  1. decode + augment, one thread: images/s per core (libjpeg-turbo decode of a
//     112x112 JPEG, random flip, (x - 127.5) / 128 into CHW floats);
//  2. the rec: reader at R ranks: R forked processes (no MPI needed: a rank only
//     reads its own slice of positions), each with its own prefetch workers,
//     reading consecutive global batches like the trainer does. Reports images/s
//     per rank and in total, and which shuffle blocks each rank touched.
// The images are generated (textured, so their JPEG size is like an aligned face's,
// about 5-10 KB) and packed with coco-pack's code into a temporary package, unless
// --rec names a real one. Each rank's first batch is checked against a
// synchronous single-process read: the benchmark fails (exit 1) on any difference.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "engine/cli.h"
#include "engine/common.h"
#include "engine/data/augment.h"
#include "engine/data/image_source.h"
#include "engine/data/jpeg.h"
#include "engine/data/pack.h"
#include "engine/logging.h"
#include "engine/proto/coco.pb.h"
#include "engine/rng.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

const char* kUsage = R"(usage: coco-data-bench [options]

Benchmarks the face data path: JPEG decode + augment per core, and the rec:
reader at several ranks (forked processes reading disjoint position slices).
)";

double seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

uint64_t checksum(const std::vector<float>& v) {
  uint64_t h = 1469598103934665603ull;
  const auto* b = reinterpret_cast<const uint8_t*>(v.data());
  for (size_t i = 0; i < v.size() * sizeof(float); ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

// Textured RGB: smooth shading plus counter-based noise, like a face crop's detail.
std::vector<uint8_t> textured(int s, int id) {
  std::vector<uint8_t> px(static_cast<size_t>(s) * s * 3);
  for (int y = 0; y < s; ++y)
    for (int x = 0; x < s; ++x)
      for (int c = 0; c < 3; ++c) {
        const float noise = coco::uniform01(id, c, static_cast<uint64_t>(y) * s + x) * 48.0f;
        const int v = 60 + (x * 90) / s + (y * 60) / s + c * 20 + static_cast<int>(noise) + (id % 17);
        px[(static_cast<size_t>(y) * s + x) * 3 + c] = static_cast<uint8_t>(std::min(v, 255));
      }
  return px;
}

// What the command line sets.
struct BenchFlags {
  int64_t n_images = 4096, size = 112, ranks = 2, batch = 128, iters = 40, threads = 1, block = 16;
  int64_t min_seconds = 2;
  std::string rec;
};

void add_bench_flags(CLI::App& app, BenchFlags& f) {
  coco::describe_tool(app, kUsage, 18);
  coco::add_int_option(app, "--images", f.n_images, 1, "generated images to pack (default 4096)");
  coco::add_int_option(app, "--size", f.size, 1, "their side in pixels (default 112)")->type_name("S");
  app.add_option("--rec", f.rec, "use this package instead of generating one")->type_name("PREFIX");
  coco::add_int_option(app, "--ranks", f.ranks, 1, "reader processes (default 2)")->type_name("R");
  coco::add_int_option(app, "--batch", f.batch, 1, "per-rank batch (default 128)")->type_name("B");
  coco::add_int_option(app, "--iters", f.iters, 1, "batches per rank (default 40)")->type_name("I");
  coco::add_int_option(app, "--threads", f.threads, 1, "decode workers per rank (default 1)")->type_name("T");
  coco::add_int_option(app, "--block", f.block, 1, "shuffle_block (default 16)")->type_name("K");
  coco::add_int_option(app, "--seconds", f.min_seconds, 1,
                       "minimum time of the single-core decode loop (default 2)")
      ->type_name("S");
}

// Generates f.n_images textured JPEGs under tmp/img and packs them into tmp/pkg/train;
// returns the package's prefix.
std::string generate_package(const fs::path& tmp, const BenchFlags& f) {
  fs::create_directories(tmp / "img");
  const int size = static_cast<int>(f.size);
  std::vector<coco::PackItem> items;
  size_t jpeg_bytes = 0;
  for (int64_t i = 0; i < f.n_images; ++i) {
    const auto px = textured(size, static_cast<int>(i));
    const auto jpeg = coco::encode_jpeg(px.data(), size, size, 92);
    jpeg_bytes += jpeg.size();
    const std::string path = (tmp / "img" / (std::to_string(i) + ".jpg")).string();
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(jpeg.data()), jpeg.size());
    items.push_back({path, i / 64, path});  // 64 images per identity
  }
  const std::string rec = (tmp / "pkg" / "train").string();
  coco::pack_records(items, rec, coco::PackLayout::kInsightface);
  std::printf("package: %lld generated %lldx%lld JPEGs, %.1f KB each on average, %s.rec\n",
              static_cast<long long>(f.n_images), static_cast<long long>(f.size), static_cast<long long>(f.size),
              jpeg_bytes / 1024.0 / f.n_images, rec.c_str());
  return rec;
}

// 1. decode + augment of (up to) the first 512 images on one core, for at least
// min_seconds.
void bench_decode(coco::ImageSource& sync, int64_t floats, double min_seconds) {
  const int64_t m = std::min<int64_t>(sync.size(), 512);
  const auto enc = sync.encoded(0, m);
  coco::AugmentParams aug;
  aug.mirror = true;
  coco::ImageU8 img;
  std::vector<float> out(floats);
  int64_t done = 0;
  double decode_s = 0;
  const auto t0 = Clock::now();
  while (seconds(t0) < min_seconds) {
    for (int64_t i = 0; i < m; ++i) {
      const auto& e = enc[i];
      const auto td = Clock::now();
      coco::decode_jpeg(reinterpret_cast<const uint8_t*>(e.buffer.data()) + e.body_offset, e.body_bytes, e.where,
                        &img);
      decode_s += seconds(td);
      coco::augment_image(img, aug, coco::AugmentMode::kTrain, 1, static_cast<uint64_t>(done), out.data());
      ++done;
    }
  }
  const double s = seconds(t0);
  std::printf("decode+augment, 1 thread: %.0f images/s per core (decode alone %.0f images/s), %lld images\n",
              done / s, done / decode_s, static_cast<long long>(done));
}

// The (epoch, shuffle block) pairs each rank's batches touch: each epoch deals the
// blocks out afresh.
std::vector<std::set<int64_t>> blocks_per_rank(coco::ImageSource& sync, const BenchFlags& f) {
  const int64_t n = sync.size(), global = f.batch * f.ranks, stride = (n + f.block - 1) / f.block;
  std::vector<std::set<int64_t>> blocks(f.ranks);
  for (int64_t r = 0; r < f.ranks; ++r)
    for (int64_t it = 0; it < f.iters; ++it) {
      const int64_t first = it * global + r * f.batch;
      const auto recs = sync.order().records(first, f.batch);
      for (int64_t k = 0; k < f.batch; ++k) blocks[r].insert((first + k) / n * stride + recs[k] / f.block);
    }
  return blocks;
}

// What a reader rank sends back: its seconds, whether its first batch matched the
// synchronous read, and whether it finished.
struct RankResult {
  double seconds = 0, first_batch_ok = 0, finished = 0;
};

// A forked reader rank: reads its slice of f.iters global batches with its own
// prefetch workers and writes its RankResult to `fd`.
void reader_rank(const coco::proto::DataSourceParameter& p, const BenchFlags& f, int64_t r, int64_t floats,
                 uint64_t want, int fd) {
  RankResult result;
  try {
    coco::proto::DataSourceParameter q = p;
    q.set_threads(static_cast<uint32_t>(f.threads));
    q.set_prefetch(static_cast<uint32_t>(std::max<int64_t>(f.threads * 2, 2)));
    auto src = coco::open_data_source(q, "", 1, "bench rank " + std::to_string(r));
    std::vector<float> d(f.batch * floats);
    std::vector<int32_t> l(f.batch);
    const auto start = Clock::now();
    uint64_t first_sum = 0;
    for (int64_t it = 0; it < f.iters; ++it) {
      src->fill_train(it * f.batch * f.ranks + r * f.batch, f.batch, d.data(), l.data());
      if (it == 0) first_sum = checksum(d);
    }
    result.seconds = seconds(start);
    result.first_batch_ok = static_cast<double>(first_sum == want);
    result.finished = 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %lld: %s\n", static_cast<long long>(r), e.what());
  }
  double out[3] = {result.seconds, result.first_batch_ok, result.finished};
  ssize_t ignored = ::write(fd, out, sizeof out);
  (void)ignored;
}

// Forks f.ranks reader processes and collects their results (a rank that did not
// finish reads as all zeros).
std::vector<RankResult> run_readers(const coco::proto::DataSourceParameter& p, const BenchFlags& f, int64_t floats,
                                    const std::vector<uint64_t>& want) {
  std::vector<pid_t> pids;
  std::vector<int> pipes;
  for (int64_t r = 0; r < f.ranks; ++r) {
    int fd[2];
    if (::pipe(fd) != 0) COCO_THROW("pipe failed");
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(fd[0]);
      reader_rank(p, f, r, floats, want[r], fd[1]);
      ::_exit(0);
    }
    ::close(fd[1]);
    pids.push_back(pid);
    pipes.push_back(fd[0]);
  }
  std::vector<RankResult> results(f.ranks);
  for (int64_t r = 0; r < f.ranks; ++r) {
    double in[3] = {0, 0, 0};
    if (::read(pipes[r], in, sizeof in) == sizeof in) results[r] = {in[0], in[1], in[2]};
    ::waitpid(pids[r], nullptr, 0);
    ::close(pipes[r]);
  }
  return results;
}

// 2. the reader at f.ranks ranks; false if a rank failed or its first batch differs
// from the synchronous read.
bool bench_readers(const coco::proto::DataSourceParameter& p, coco::ImageSource& sync, const BenchFlags& f,
                   int64_t floats) {
  const auto blocks = blocks_per_rank(sync, f);
  int64_t shared = 0;
  for (int64_t b : blocks[0])
    for (int64_t r = 1; r < f.ranks; ++r) shared += blocks[r].count(b);
  std::vector<uint64_t> want(f.ranks);
  {
    std::vector<float> d(f.batch * floats);
    std::vector<int32_t> l(f.batch);
    for (int64_t r = 0; r < f.ranks; ++r) {
      sync.fill_train(r * f.batch, f.batch, d.data(), l.data());
      want[r] = checksum(d);
    }
  }
  std::fflush(stdout);  // the forked ranks must not print it again
  const auto t0 = Clock::now();
  const auto results = run_readers(p, f, floats, want);
  bool ok = true;
  double slowest = 0;
  for (int64_t r = 0; r < f.ranks; ++r) {
    const RankResult& res = results[r];
    if (res.finished != 1 || res.first_batch_ok != 1) ok = false;
    slowest = std::max(slowest, res.seconds);
    std::printf("rank %lld: %lld batches of %lld in %.2f s = %.0f images/s, %zu (epoch, shuffle block) pairs read, "
                "first batch %s\n",
                static_cast<long long>(r), static_cast<long long>(f.iters), static_cast<long long>(f.batch),
                res.seconds, f.iters * f.batch / std::max(res.seconds, 1e-9), blocks[r].size(),
                res.first_batch_ok == 1 ? "matches the synchronous read" : "DIFFERS from the synchronous read");
  }
  std::printf("reader, %lld ranks x %lld decode threads: %.0f images/s in total (%.2f s wall), %lld (epoch, block) "
              "pairs read by more than one rank\n",
              static_cast<long long>(f.ranks), static_cast<long long>(f.threads),
              f.ranks * f.iters * f.batch / std::max(slowest, 1e-9), seconds(t0), static_cast<long long>(shared));
  return ok;
}

// Both benchmarks on f.rec, or on a package generated under tmp.
bool run_benchmarks(BenchFlags f, const fs::path& tmp) {
  if (f.rec.empty()) f.rec = generate_package(tmp, f);
  coco::proto::DataSourceParameter p;
  p.set_source("rec:" + f.rec);
  p.set_mirror(true);
  p.set_shuffle_block(static_cast<uint32_t>(f.block));
  p.set_threads(0);
  auto sync_src = coco::open_data_source(p, "", 1, "bench");
  auto* sync = dynamic_cast<coco::ImageSource*>(sync_src.get());
  const coco::Shape shape = sync->sample_shape();
  const int64_t floats = shape[0] * shape[1] * shape[2];
  bench_decode(*sync, floats, static_cast<double>(f.min_seconds));
  return bench_readers(p, *sync, f, floats);
}

}  // namespace

int main(int argc, char** argv) {
  BenchFlags flags;
  CLI::App app{"", "coco-data-bench"};
  add_bench_flags(app, flags);
  if (const auto rc = coco::parse_flags(app, argc, argv)) return *rc;
  coco::init_logging(0, 1);
  const fs::path tmp = fs::temp_directory_path() / ("coco_data_bench_" + std::to_string(::getpid()));
  bool ok = false;
  try {
    ok = run_benchmarks(flags, tmp);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
  }
  std::error_code ec;
  fs::remove_all(tmp, ec);
  return ok ? 0 : 1;
}
