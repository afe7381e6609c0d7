// coco-export: a checkpoint (coco's or a Caffe .caffemodel) -> embeddings of a
// dataset, as DIR/embeddings.npy, DIR/labels.npy and DIR/meta.json.
// Errors are caught here, once, and reported as one line; usage errors exit 2.
#include <unistd.h>

#include <chrono>
#include <memory>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "comm/mpi_communicator.h"
#include "engine/cli.h"
#include "engine/common.h"
#include "engine/cuda_runtime.h"
#include "engine/logging.h"
#include "engine/math.h"
#include "engine/tensor.h"
#include "tools/embed/export.h"
#include "tools/embed/onnx_export.h"

namespace {

const char* kUsage = R"(usage: coco-export --config NET --weights FILE --data SOURCE --out DIR [options]
       coco-export --config NET --weights FILE --onnx MODEL.onnx [--data SOURCE --onnx-check N]

Runs the test-phase net up to one blob over a dataset and writes, in dataset
order, DIR/embeddings.npy (float32, N x D), DIR/labels.npy (int64, N) and
DIR/meta.json (config, checkpoint, blob, normalisation, count, time).
Only the layers the blob depends on run (the loss head does not).
)";

const char* kFooter = R"(Under mpirun (mpirun -np N coco-export ...) each rank exports a contiguous
slice of the dataset and rank 0 gathers them in dataset order and writes DIR.)";

// What the command line sets.
struct ExportFlags {
  coco::ExportOptions opt;
  std::string out, device = "cpu", onnx;
  int64_t onnx_check = 0;
  int threads = 0;
  bool quiet = false;
};

void add_export_flags(CLI::App& app, ExportFlags& f) {
  coco::ExportOptions& opt = f.opt;
  coco::describe_tool(app, kUsage, 23);
  app.footer(kFooter);
  app.add_option("--config", opt.config, "net prototxt, or a solver config holding its net")
      ->type_name("FILE")->required();
  app.add_option("--weights", opt.weights,
                 "coco checkpoint (.ckpt) or Caffe .caffemodel, matched by\nlayer name (without it: the fillers' "
                 "values, to check\nthe export path)")
      ->type_name("FILE");
  app.add_option("--blob", opt.blob,
                 "blob to export. Default: the embedding before the head,\nfound from the first loss layer: its "
                 "input, stepping\nback over the classifier (InnerProduct/CenterProjection)\nwhen the loss is "
                 "SoftmaxWithLoss, then over Normalize\nlayers. For LeNet++ (seed and configs/) that is \"ip1\".")
      ->type_name("NAME");
  app.add_option("--data", opt.data,
                 "mnist:DIR (the MNIST IDX files), rec:PREFIX (a RecordIO\npackage), list:FILE (\"path label\" "
                 "lines), bin:FILE\n(an insightface verification set; labels are pair\nnumbers) or synthetic:K")
      ->type_name("SOURCE");
  coco::add_choice_option(app, "--split", opt.split, {"train", "test"}, "train or test (default test)")->type_name("S");
  app.add_option("--out", f.out, "output folder (created); optional with --onnx")->type_name("DIR");
  app.add_option("--onnx", f.onnx,
                 "also (or, without --out, only) write the net up to the\nblob as an ONNX model (opset 13, dynamic "
                 "batch axis),\nchecked by the ONNX checker")
      ->type_name("FILE");
  coco::add_int_option(app, "--onnx-check", f.onnx_check, 1,
                       "with --onnx: write FILE.input.npy (the first N samples\nof --data as the net takes them) and "
                       "FILE.output.npy\n(coco's output for them), for tools/onnx_check.mjs")
      ->type_name("N");
  coco::add_int_option(app, "--batch-size", opt.batch, 1, "samples per forward pass (default 100)");
  coco::add_int_option(app, "--limit", opt.limit, 0, "export only the first N samples");
  app.add_flag_callback("--normalize", [&opt] { opt.normalization = coco::Normalization::kL2; },
                        "divide each embedding by its L2 norm");
  app.add_flag_callback("--flip-sum", [&opt] { opt.flip_sum = coco::FlipSum::kOn; },
                        "add the embedding of the horizontally mirrored image\n(for face images; applied before "
                        "--normalize)");
  coco::add_int_option(app, "--threads", f.threads, 0, "CPU threads");
  app.add_option("--device", f.device,
                 "cpu (default), cuda:N, or cuda (under mpirun: the GPU of\neach rank's local rank)")
      ->type_name("DEV");
  app.add_flag("--quiet", f.quiet, "no progress line");
}

// Every rank's slice, joined in dataset order. The labels travel as int32 class ids
// in float buffers (the communicator's type): the all-gather moves their bits.
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
  std::vector<float> v(total * mine.dim);
  std::vector<int32_t> labels(total), my_labels(mine.labels.begin(), mine.labels.end());
  comm.all_gather(mine.values.data(), v.data(), values);
  comm.all_gather(reinterpret_cast<float*>(my_labels.data()), reinterpret_cast<float*>(labels.data()), rows);
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
  ExportFlags flags;
  CLI::App app{"", "coco-export"};
  add_export_flags(app, flags);
  const auto check = [&flags] {
    if (flags.out.empty() && flags.onnx.empty()) throw coco::UsageError{"--out DIR (or --onnx FILE) is required"};
    if (flags.opt.data.empty() && (!flags.out.empty() || flags.onnx_check > 0))
      throw coco::UsageError{"--data SOURCE is required (for --out and --onnx-check)"};
    if (flags.onnx_check > 0 && flags.onnx.empty())
      throw coco::UsageError{"--onnx-check needs --onnx FILE"};
  };
  if (const auto rc = coco::parse_flags(app, argc, argv, check)) return *rc;
  coco::ExportOptions& opt = flags.opt;
  const std::string& out = flags.out;
  const std::string& device = flags.device;
  const int threads = flags.threads;
  bool quiet = flags.quiet;

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
    if (dev.type == coco::Device::kCUDA) {
      if (!coco::cuda::available())
        COCO_THROW("--device ", device, ": ",
                   COCO_WITH_CUDA ? "no CUDA device is visible" : "this coco build has no CUDA backend",
                   " (use --device cpu)");
      // Under mpirun, --device cuda gives each rank the GPU of its local rank.
      coco::cuda::set_device(comm->size() > 1 && device == "cuda" ? comm->local_rank() : dev.index);
      flags.opt.device = coco::Device::kCUDA;
    }
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
    if (!flags.onnx.empty() && comm->rank() == 0) {
      const coco::OnnxExport x = coco::export_onnx(opt, flags.onnx, flags.onnx_check);
      spdlog::info("wrote {}: the net up to '{}' ({}), input (batch, {}, {} nodes, {} parameters; the ONNX "
                   "checker passed", flags.onnx, x.blob, x.blob_rule, coco::shape_str(x.sample).substr(1),
                   x.nodes, x.parameters);
      if (flags.onnx_check > 0) {
        spdlog::info("wrote {0}.input.npy and {0}.output.npy ({1} samples): check a runtime with "
                     "tools/onnx_check.mjs {0}", flags.onnx, flags.onnx_check);
      }
    }
    if (out.empty()) return 0;
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
