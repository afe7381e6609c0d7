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

  --images N      generated images to pack (default 4096)
  --size S        their side in pixels (default 112)
  --rec PREFIX    use this package instead of generating one
  --ranks R       reader processes (default 2)
  --batch B       per-rank batch (default 128)
  --iters I       batches per rank (default 40)
  --threads T     decode workers per rank (default 1)
  --block K       shuffle_block (default 16)
  --seconds S     minimum time of the single-core decode loop (default 2)
  -h, --help      this text
)";

struct UsageError {
  std::string msg;
};

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

}  // namespace

int main(int argc, char** argv) {
  int64_t n_images = 4096, size = 112, ranks = 2, batch = 128, iters = 40, threads = 1, block = 16;
  double min_seconds = 2;
  std::string rec;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto num = [&]() -> int64_t {
        if (i + 1 >= argc) throw UsageError{a + " needs a value"};
        try {
          const long long v = std::stoll(argv[++i]);
          if (v <= 0) throw std::invalid_argument("");
          return v;
        } catch (const std::exception&) {
          throw UsageError{a + " takes a positive integer"};
        }
      };
      if (a == "-h" || a == "--help") {
        std::fputs(kUsage, stdout);
        return 0;
      } else if (a == "--images") {
        n_images = num();
      } else if (a == "--size") {
        size = num();
      } else if (a == "--rec") {
        if (i + 1 >= argc) throw UsageError{"--rec needs a value"};
        rec = argv[++i];
      } else if (a == "--ranks") {
        ranks = num();
      } else if (a == "--batch") {
        batch = num();
      } else if (a == "--iters") {
        iters = num();
      } else if (a == "--threads") {
        threads = num();
      } else if (a == "--block") {
        block = num();
      } else if (a == "--seconds") {
        min_seconds = static_cast<double>(num());
      } else {
        throw UsageError{"unknown option '" + a + "'"};
      }
    }
  } catch (const UsageError& e) {
    std::fprintf(stderr, "coco-data-bench: %s\n\n%s", e.msg.c_str(), kUsage);
    return 2;
  }
  coco::init_logging(0, 1);
  const fs::path tmp = fs::temp_directory_path() / ("coco_data_bench_" + std::to_string(::getpid()));
  try {
    // ---- the package ----
    if (rec.empty()) {
      fs::create_directories(tmp / "img");
      std::vector<coco::PackItem> items;
      size_t jpeg_bytes = 0;
      for (int64_t i = 0; i < n_images; ++i) {
        const auto px = textured(static_cast<int>(size), static_cast<int>(i));
        const auto jpeg = coco::encode_jpeg(px.data(), static_cast<int>(size), static_cast<int>(size), 92);
        jpeg_bytes += jpeg.size();
        const std::string path = (tmp / "img" / (std::to_string(i) + ".jpg")).string();
        std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(jpeg.data()), jpeg.size());
        items.push_back({path, i / 64, path});  // 64 images per identity
      }
      rec = (tmp / "pkg" / "train").string();
      coco::pack_records(items, rec, coco::PackLayout::kInsightface);
      std::printf("package: %lld generated %lldx%lld JPEGs, %.1f KB each on average, %s.rec\n",
                  static_cast<long long>(n_images), static_cast<long long>(size), static_cast<long long>(size),
                  jpeg_bytes / 1024.0 / n_images, rec.c_str());
    }
    coco::proto::DataSourceParameter p;
    p.set_source("rec:" + rec);
    p.set_mirror(true);
    p.set_shuffle_block(static_cast<uint32_t>(block));
    p.set_threads(0);
    auto sync_src = coco::open_data_source(p, "", 1, "bench");
    auto* sync = dynamic_cast<coco::ImageSource*>(sync_src.get());
    const int64_t n = sync->size();
    const coco::Shape shape = sync->sample_shape();
    const int64_t floats = shape[0] * shape[1] * shape[2];

    // ---- 1. decode + augment on one core ----
    {
      const int64_t m = std::min<int64_t>(n, 512);
      const auto enc = sync->encoded(0, m);
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

    // ---- 2. the reader at R ranks ----
    const int64_t global = batch * ranks;
    std::vector<std::set<int64_t>> blocks(ranks);
    for (int64_t r = 0; r < ranks; ++r)
      for (int64_t it = 0; it < iters; ++it) {
        // (epoch, block): each epoch deals the blocks out afresh.
        const int64_t first = it * global + r * batch, stride = (n + block - 1) / block;
        const auto recs = sync->order().records(first, batch);
        for (int64_t k = 0; k < batch; ++k) blocks[r].insert((first + k) / n * stride + recs[k] / block);
      }
    int64_t shared = 0;
    for (int64_t b : blocks[0])
      for (int64_t r = 1; r < ranks; ++r) shared += blocks[r].count(b);
    std::vector<uint64_t> want(ranks);
    {
      std::vector<float> d(batch * floats), l(batch);
      for (int64_t r = 0; r < ranks; ++r) {
        sync->fill_train(r * batch, batch, d.data(), l.data());
        want[r] = checksum(d);
      }
    }
    std::fflush(stdout);
    std::vector<pid_t> pids;
    std::vector<int> pipes;
    const auto t0 = Clock::now();
    for (int64_t r = 0; r < ranks; ++r) {
      int fd[2];
      if (::pipe(fd) != 0) COCO_THROW("pipe failed");
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::close(fd[0]);
        double result[3] = {0, 0, 0};
        try {
          coco::proto::DataSourceParameter q = p;
          q.set_threads(static_cast<uint32_t>(threads));
          q.set_prefetch(static_cast<uint32_t>(std::max<int64_t>(threads * 2, 2)));
          auto src = coco::open_data_source(q, "", 1, "bench rank " + std::to_string(r));
          std::vector<float> d(batch * floats), l(batch);
          const auto start = Clock::now();
          uint64_t first_sum = 0;
          for (int64_t it = 0; it < iters; ++it) {
            src->fill_train(it * global + r * batch, batch, d.data(), l.data());
            if (it == 0) first_sum = checksum(d);
          }
          result[0] = seconds(start);
          result[1] = static_cast<double>(first_sum == want[r]);
          result[2] = 1;
        } catch (const std::exception& e) {
          std::fprintf(stderr, "rank %lld: %s\n", static_cast<long long>(r), e.what());
        }
        ssize_t ignored = ::write(fd[1], result, sizeof result);
        (void)ignored;
        ::_exit(0);
      }
      ::close(fd[1]);
      pids.push_back(pid);
      pipes.push_back(fd[0]);
    }
    bool ok = true;
    double slowest = 0;
    for (int64_t r = 0; r < ranks; ++r) {
      double result[3] = {0, 0, 0};
      if (::read(pipes[r], result, sizeof result) != sizeof result || result[2] != 1) ok = false;
      ::waitpid(pids[r], nullptr, 0);
      ::close(pipes[r]);
      slowest = std::max(slowest, result[0]);
      std::printf("rank %lld: %lld batches of %lld in %.2f s = %.0f images/s, %zu (epoch, shuffle block) pairs read, first batch %s\n",
                  static_cast<long long>(r), static_cast<long long>(iters), static_cast<long long>(batch), result[0],
                  iters * batch / std::max(result[0], 1e-9), blocks[r].size(),
                  result[1] == 1 ? "matches the synchronous read" : "DIFFERS from the synchronous read");
      if (result[1] != 1) ok = false;
    }
    std::printf("reader, %lld ranks x %lld decode threads: %.0f images/s in total (%.2f s wall), %lld (epoch, block) pairs read "
                "by more than one rank\n",
                static_cast<long long>(ranks), static_cast<long long>(threads),
                ranks * iters * batch / std::max(slowest, 1e-9), seconds(t0), static_cast<long long>(shared));
    std::error_code ec;
    fs::remove_all(tmp, ec);
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    spdlog::error("{}", e.what());
    return 1;
  }
}
