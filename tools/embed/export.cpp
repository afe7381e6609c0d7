#include "tools/embed/export.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "comm/communicator.h"
#include "engine/aside_files.h"
#include "engine/checkpoint.h"
#include "engine/common.h"
#include "engine/config.h"
#include "engine/data/source.h"
#include "engine/device_memory.h"
#include "engine/embedding_net.h"
#include "engine/net.h"
#include "engine/norm.h"
#include "engine/proto/coco.pb.h"
#include "tools/embed/npy.h"

namespace coco {

namespace {
// Each row divided by its L2 norm (the convention of docs/DESIGN.md, Conventions).
void normalize_rows(Embeddings* e) {
  for (int64_t i = 0; i < e->rows(); ++i) {
    float* v = e->values.data() + i * e->dim;
    double s = 0;
    for (int64_t k = 0; k < e->dim; ++k) s += double(v[k]) * v[k];
    const double inv = 1.0 / std::sqrt(s + kNormEpsilon);
    for (int64_t k = 0; k < e->dim; ++k) v[k] = static_cast<float>(v[k] * inv);
  }
}
}  // namespace

Embeddings export_embeddings(const ExportOptions& opt, int rank, int size, const ProgressFn& progress) {
  if (opt.batch <= 0) COCO_THROW("batch size must be positive, got ", opt.batch);
  const TrainConfig cfg = load_train_config(opt.config);
  const proto::NetParameter full = layers_for_phase(cfg.net, Phase::kTest);
  Embeddings e;
  const EmbeddingChoice choice = choose_embedding_blob(full, opt.blob, cfg.net_origin);
  e.blob = choice.blob;
  e.blob_rule = choice.rule;
  const proto::NetParameter pruned = prune_to_blob(full, e.blob, cfg.net_origin);

  proto::DataSourceParameter dp;
  dp.set_source(opt.data);
  dp.set_split(opt.split);
  dp.set_batch_size(static_cast<uint32_t>(opt.batch));
  dp.set_shuffle(false);
  const auto src = open_data_source(dp, "", opt.seed, "--data " + opt.data);
  e.total = opt.limit >= 0 ? std::min(opt.limit, src->size()) : src->size();
  // Each rank exports a contiguous slice, split as the head splits classes.
  const ShardRange range = shard_range(e.total, rank, size);
  e.begin = range.start;
  const int64_t rows = range.count;
  const Shape sample = src->sample_shape();
  const int64_t sample_count = shape_count(sample);

  LocalCommunicator comm;
  auto build = [&](int64_t batch) {
    proto::NetParameter p = pruned;
    set_input_batch(&p, batch);
    return std::make_unique<Net>(p, Phase::kTest, &comm, opt.seed, cfg.net_origin);
  };
  const int64_t batch = std::max<int64_t>(1, std::min(opt.batch, rows));
  auto net = build(batch);
  if (!opt.weights.empty()) load_weights(*net, opt.weights);
  if (opt.device != Device::kCPU) net->to_device(opt.device);

  // Which input takes the images (per-sample shape equal to the source's) and which the labels.
  auto find_inputs = [&](const Net& n, int* data_in, int* label_in) {
    *data_in = *label_in = -1;
    for (size_t i = 0; i < n.input_blobs().size(); ++i) {
      const Shape& s = n.input_blobs()[i]->shape();
      const Shape per(s.begin() + 1, s.end());
      if (*data_in < 0 && shape_count(per) == sample_count && per.size() == sample.size() && per == sample)
        *data_in = static_cast<int>(i);
      else if (*label_in < 0 && shape_count(per) == 1)
        *label_in = static_cast<int>(i);
    }
    if (*data_in < 0)
      COCO_THROW(cfg.net_origin, ": no input of the net takes samples of shape ", shape_str(sample), " from ",
                 src->describe());
  };

  // Samples are read into host memory and copied to the net's input (a device copy
  // on CUDA); the blob is read back with to_vector either way.
  std::vector<int32_t> labels_f(static_cast<size_t>(batch));
  std::vector<float> x_host(static_cast<size_t>(batch * sample_count));
  const int64_t width = sample.empty() ? 1 : sample.back();
  std::unique_ptr<Net> tail;
  for (int64_t done = 0; done < rows;) {
    const int64_t n = std::min(batch, rows - done);
    Net* cur = net.get();
    if (n != batch) {  // the short last batch: a net of its size sharing the parameters
      tail = build(n);
      tail->share_params_from(*net);
      if (opt.device != Device::kCPU) tail->to_device(opt.device);
      cur = tail.get();
    }
    int data_in, label_in;
    find_inputs(*cur, &data_in, &label_in);
    float* x = x_host.data();
    src->fill_range(range.start + done, n, x, labels_f.data());
    const auto upload = [&] {
      copy_bytes(cur->input_blobs()[data_in]->mutable_data(), x, static_cast<size_t>(n * sample_count) * sizeof(float));
    };
    upload();
    if (label_in >= 0) {
      cur->input_blobs()[label_in]->set_element_type(ElementType::kInt32);
      copy_bytes(cur->input_blobs()[label_in]->mutable_data(), labels_f.data(), static_cast<size_t>(n) * sizeof(int32_t));
    }

    auto read_blob = [&](bool add) {
      const Blob* b = cur->blob(e.blob);
      if (b->shape().empty() || b->shape()[0] != n)
        COCO_THROW(cfg.net_origin, ": blob '", e.blob, "' has shape ", shape_str(b->shape()),
                   "; its first axis must be the batch (", n, ")");
      const int64_t d = b->count() / n;
      if (e.dim == 0) {
        e.dim = d;
        e.values.reserve(static_cast<size_t>(rows * d));
      }
      const std::vector<float> host = b->data().to_vector();
      const float* v = host.data();
      if (!add) {
        e.values.insert(e.values.end(), v, v + n * d);
      } else {
        float* out = e.values.data() + done * d;
        for (int64_t k = 0; k < n * d; ++k) out[k] += v[k];
      }
    };
    cur->forward();
    read_blob(false);
    if (opt.flip_sum == FlipSum::kOn) {  // mirror the last axis (image width) and add
      mirror_rows(x, n * sample_count, width);
      upload();
      cur->forward();
      read_blob(true);
    }
    for (int64_t i = 0; i < n; ++i) {
      if (labels_f[i] < 0)
        COCO_THROW(src->describe(), ": sample ", range.start + done + i, " has label ", labels_f[i], ", not a class id");
      e.labels.push_back(labels_f[i]);
    }
    done += n;
    if (progress) progress(done, rows);
  }
  if (e.dim == 0) {  // an empty slice: learn the width from one forward of batch 1
    e.dim = net->blob(e.blob)->count() / std::max<int64_t>(1, net->blob(e.blob)->shape()[0]);
  }
  if (opt.normalization == Normalization::kL2) normalize_rows(&e);
  return e;
}

Embeddings join_slices(std::vector<Embeddings> slices) {
  if (slices.empty()) COCO_THROW("join_slices: no slices");
  std::sort(slices.begin(), slices.end(), [](const Embeddings& a, const Embeddings& b) { return a.begin < b.begin; });
  Embeddings out;
  out.total = slices[0].total;
  out.dim = slices[0].dim;
  out.blob = slices[0].blob;
  out.blob_rule = slices[0].blob_rule;
  for (const auto& s : slices) {
    if (s.begin != out.rows())
      COCO_THROW("join_slices: slice at row ", s.begin, " does not follow rows [0, ", out.rows(), ")");
    if (s.dim != out.dim || s.total != out.total || s.blob != out.blob)
      COCO_THROW("join_slices: slice at row ", s.begin, " disagrees on dim, total or blob");
    out.values.insert(out.values.end(), s.values.begin(), s.values.end());
    out.labels.insert(out.labels.end(), s.labels.begin(), s.labels.end());
  }
  if (out.rows() != out.total) COCO_THROW("join_slices: slices hold ", out.rows(), " rows, expected ", out.total);
  return out;
}

void write_export(const std::string& dir, const Embeddings& e, const ExportOptions& opt, double seconds) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) COCO_THROW(dir, ": cannot create the output folder: ", ec.message());
  // The three files are written aside and moved in together at the end, so a failed
  // export (a full disk, say) leaves an earlier export in `dir` whole, never mixed.
  AsideFiles out;
  write_npy(out.aside(dir + "/embeddings.npy"), {e.rows(), e.dim}, e.values.data());
  write_npy(out.aside(dir + "/labels.npy"), {e.rows()}, e.labels.data());

  char when[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  nlohmann::json m;
  m["format"] = "coco-export/1";
  m["config"] = opt.config;
  m["checkpoint"] = opt.weights;
  m["blob"] = e.blob;
  m["blob_rule"] = e.blob_rule;
  m["data"] = opt.data;
  m["split"] = opt.split;
  m["count"] = e.rows();
  m["dim"] = e.dim;
  m["normalization"] = opt.normalization == Normalization::kL2 ? "l2" : "none";
  m["flip_sum"] = opt.flip_sum == FlipSum::kOn;
  m["batch"] = opt.batch;
  m["created_utc"] = when;
  m["seconds"] = seconds;
  write_file_atomic(out.aside(dir + "/meta.json"), m.dump(2) + "\n");
  out.commit();
}

}  // namespace coco
