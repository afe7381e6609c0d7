// coco-export: a checkpoint (coco's or a Caffe .caffemodel) -> embeddings of a
// dataset, as DIR/embeddings.npy, DIR/labels.npy and DIR/meta.json.
// Errors are caught here, once, and reported as one line; usage errors exit 2.
#include <unistd.h>

#include <chrono>
#include <memory>
#include <cstdio>
#include <string>

#include "comm/mpi_communicator.h"
#include "engine/cli.h"
#include "engine/common.h"
#include "engine/logging.h"
#include "engine/math.h"
#include "engine/tensor.h"
#include "tools/embed/export.h"

namespace {

using coco::UsageError;
using coco::parse_int_flag;

const char* kUsage = R"(usage: coco-export --config NET --weights FILE --data SOURCE --out DIR [options]

Runs the test-phase net up to one blob over a dataset and writes, in dataset
order, DIR/embeddings.npy (float32, N x D), DIR/labels.npy (int64, N) and
DIR/meta.json (config, checkpoint, blob, normalisation, count, time).
Only the layers the blob depends on run (the loss head does not).

  --config FILE        net prototxt, or a solver config holding its net
  --weights FILE       coco checkpoint (.ckpt) or Caffe .caffemodel, matched by
                       layer name
  --blob NAME          blob to export. Default: the embedding before the head,
                       found from the first loss layer: its input, stepping
                       back over the classifier (InnerProduct/CenterProjection)
                       when the loss is SoftmaxWithLoss, then over Normalize
                       layers. For LeNet++ (seed and configs/) that is "ip1".
  --data SOURCE        mnist:DIR (the four MNIST IDX files)
  --split S            train or test (default test)
  --out DIR            output folder (created)
  --batch-size N       samples per forward pass (default 100)
  --limit N            export only the first N samples
  --normalize          divide each embedding by its L2 norm
  --flip-sum           add the embedding of the horizontally mirrored image
                       (for face images; applied before --normalize)
  --threads N          CPU threads
  --device DEV         cpu (default); cuda:N needs the CUDA backend
  --quiet              no progress line
  -h, --help           this text

Under mpirun (mpirun -np N coco-export ...) each rank exports a contiguous
slice of the dataset and rank 0 gathers them in dataset order and writes DIR.
)";

// Every rank's slice, joined in dataset order (labels travel as float32: exact
// below 2^24 classes).
coco::Embeddings gather_on_every_rank(coco::Communicator& comm, coco::Embeddings mine) {
  const int n = comm.size();
  std::vector<float> rows_f{static_cast<float>(mine.rows())}, all_rows(n);
  comm.all_gather(rows_f.data(), all_rows.data(), std::vector<int64_t>(n, 1));
  std::vector<int64_t> rows(n), values(n);
  int64_t total = 0;
  for (int r = 0; r < n; ++r) {
    rows[r] = static_cast<int64_t>(all_rows[r]);
    values[r] = rows[r] * mine.dim;
    total += rows[r];
  }
  std::vector<float> v(total * mine.dim), labels(total), my_labels(mine.labels.begin(), mine.labels.end());
  comm.all_gather(mine.values.data(), v.data(), values);
  comm.all_gather(my_labels.data(), labels.data(), rows);
  std::vector<coco::Embeddings> slices(n, mine);
  int64_t begin = 0;
  for (int r = 0; r < n; ++r) {
    auto& s = slices[r];
    s.begin = begin;
    s.values.assign(v.begin() + begin * mine.dim, v.begin() + (begin + rows[r]) * mine.dim);
    s.labels.assign(labels.begin() + begin, labels.begin() + begin + rows[r]);
    begin += rows[r];
  }
  return coco::join_slices(std::move(slices));
}

}  // namespace

int main(int argc, char** argv) {
  coco::ExportOptions opt;
  std::string out, device = "cpu";
  int threads = 0;
  bool quiet = false;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&] { return coco::flag_value(argc, argv, i, a); };
      if (a == "-h" || a == "--help") {
        std::fputs(kUsage, stdout);
        return 0;
      } else if (a == "--config") {
        opt.config = value();
      } else if (a == "--weights") {
        opt.weights = value();
      } else if (a == "--blob") {
        opt.blob = value();
      } else if (a == "--data") {
        opt.data = value();
      } else if (a == "--split") {
        opt.split = value();
        if (opt.split != "train" && opt.split != "test") throw UsageError{"--split is train or test, got '" + opt.split + "'"};
      } else if (a == "--out") {
        out = value();
      } else if (a == "--batch-size") {
        opt.batch = parse_int_flag(a, value(), 1);
      } else if (a == "--limit") {
        opt.limit = parse_int_flag(a, value(), 0);
      } else if (a == "--normalize") {
        opt.normalization = coco::Normalization::kL2;
      } else if (a == "--flip-sum") {
        opt.flip_sum = coco::FlipSum::kOn;
      } else if (a == "--threads") {
        threads = static_cast<int>(parse_int_flag(a, value(), 0));
      } else if (a == "--device") {
        device = value();
      } else if (a == "--quiet") {
        quiet = true;
      } else {
        throw UsageError{"unknown option '" + a + "'"};
      }
    }
    if (opt.config.empty()) throw UsageError{"--config is required"};
    if (opt.weights.empty()) throw UsageError{"--weights is required"};
    if (opt.data.empty()) throw UsageError{"--data is required"};
    if (out.empty()) throw UsageError{"--out is required"};
  } catch (const UsageError& e) {
    std::fprintf(stderr, "coco-export: %s\n\n%s", e.msg.c_str(), kUsage);
    return 2;
  }

  std::unique_ptr<coco::MpiRuntime> mpi;
  std::unique_ptr<coco::Communicator> comm;
  try {
    if (coco::launched_by_mpi()) mpi = std::make_unique<coco::MpiRuntime>(&argc, &argv);
    comm = coco::make_cpu_communicator();
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "coco-export: cannot start MPI: %s\n", ex.what());
    return 1;
  }
  coco::init_logging(comm->rank(), comm->size());
  quiet = quiet || comm->rank() != 0;
  return coco::run_or_abort_job(comm->size(), [&]() -> int {
    const auto dev = coco::DeviceSpec::parse(device);
    if (dev.type != coco::Device::kCPU)
      COCO_THROW("--device ", device, ": export on CUDA is not available in this build yet (use --device cpu)");
    coco::set_num_threads(threads);
    coco::set_flush_denormals(true);
    const bool tty = isatty(fileno(stderr)) != 0;
    int64_t last_decile = -1;
    const auto t0 = std::chrono::steady_clock::now();
    auto progress = [&](int64_t done, int64_t total) {
      if (quiet) return;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double rate = done / std::max(s, 1e-9);
      if (tty) {
        const int width = 30, filled = static_cast<int>(width * done / std::max<int64_t>(total, 1));
        std::fprintf(stderr, "\r[%s%s] %lld/%lld  %.0f samples/s  ETA %.0fs", std::string(filled, '#').c_str(),
                     std::string(width - filled, ' ').c_str(), static_cast<long long>(done),
                     static_cast<long long>(total), rate, (total - done) / std::max(rate, 1e-9));
        if (done == total) std::fputc('\n', stderr);
      } else if (10 * done / std::max<int64_t>(total, 1) != last_decile) {
        last_decile = 10 * done / std::max<int64_t>(total, 1);
        spdlog::info("export {}/{}  {:.0f} samples/s", done, total, rate);
      }
    };
    coco::Embeddings e = coco::export_embeddings(opt, comm->rank(), comm->size(), progress);
    if (comm->size() > 1) e = gather_on_every_rank(*comm, std::move(e));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (comm->rank() != 0) return 0;
    coco::write_export(out, e, opt, secs);
    spdlog::info("wrote {} embeddings of blob '{}' ({}), dim {}, to {} in {:.1f}s", e.rows(), e.blob, e.blob_rule,
                 e.dim, out, secs);
    return 0;
  });
}
