#include "engine/validation.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "comm/communicator.h"
#include "engine/common.h"
#include "engine/config.h"
#include "engine/data/bin_source.h"
#include "engine/embedding_net.h"
#include "engine/face_verification.h"
#include "engine/proto/coco.pb.h"

namespace coco {

struct Validator::Set {
  std::string name;
  std::unique_ptr<DataSource> data;
  std::vector<bool> issame;
  int64_t batch = 0;  // images per forward pass
};

std::string validation_set_name(const std::string& source) {
  const auto colon = source.find(':');
  return std::filesystem::path(colon == std::string::npos ? source : source.substr(colon + 1)).stem().string();
}

Validator::Validator(const proto::SolverParameter& solver, const proto::NetParameter& net, const std::string& origin,
                     const std::string& data_root, const Net& train_net, Communicator* comm, Communicator* host_comm,
                     uint64_t seed)
    : host_comm_(host_comm), folds_(solver.val_folds()) {
  const proto::NetParameter test = layers_for_phase(net, Phase::kTest);
  blob_ = choose_embedding_blob(test, solver.val_blob(), origin).blob;
  for (const auto& v : solver.val_data()) {
    proto::DataSourceParameter p = v;
    p.set_shuffle(false);
    p.set_threads(0);  // evaluation reads in order; the prefetch workers serve training
    Set s;
    s.name = validation_set_name(v.source());
    for (const auto& other : sets_)
      if (other.name == s.name)
        COCO_THROW(origin, ": two val_data sets are named '", s.name, "' (their files share a name)");
    // --data-root names the folder of the training data; the .bin files sit beside it.
    std::string path = v.source().substr(v.source().find(':') + 1);
    if (!data_root.empty()) path = (std::filesystem::path(data_root) / std::filesystem::path(path).filename()).string();
    p.set_source("bin:" + path);
    VerificationSource set = open_verification_source(path, p, seed, origin + ": val_data");
    s.data = std::move(set.images);
    s.issame = std::move(set.issame);
    s.batch = v.has_batch_size_per_rank() ? v.batch_size_per_rank() : v.batch_size();
    sets_.push_back(std::move(s));
  }
  proto::NetParameter pruned = prune_to_blob(test, blob_, origin);
  set_input_batch(&pruned, sets_.empty() ? 1 : sets_[0].batch);
  net_ = std::make_unique<Net>(pruned, Phase::kTest, comm, seed, origin + " (validation)");
  net_->share_params_from(train_net);
  for (const auto& s : sets_) {
    const Shape& in = net_->input_blobs()[0]->shape();
    if (Shape(in.begin() + 1, in.end()) != s.data->sample_shape())
      COCO_THROW(origin, ": val_data ", s.data->describe(), " gives samples of shape ",
                 shape_str(s.data->sample_shape()), " but the net's input '", net_->input_names()[0], "' takes ",
                 shape_str(Shape(in.begin() + 1, in.end())));
  }
}

Validator::~Validator() = default;

std::vector<ValidationScore> Validator::run() {
  std::vector<ValidationScore> out;
  for (const auto& s : sets_) out.push_back(score(s));
  return out;
}

void Validator::embed(const Set& set, int64_t start, int64_t n, std::vector<float>* sums, std::vector<float>* norms) {
  Shape shape = set.data->sample_shape();
  shape.insert(shape.begin(), n);
  Blob* data = net_->input_blobs()[0];
  data->reshape(shape);
  if (net_->input_blobs().size() > 1) net_->input_blobs()[1]->reshape({n});  // labels: not read
  host_data_.reshape(shape);
  std::vector<int32_t> labels(static_cast<size_t>(n));
  set.data->fill_range(start, n, host_data_.mutable_data(), labels.data());
  auto forward = [&] {
    data->data().copy_from(host_data_.data());
    net_->forward();
    return net_->blob(blob_)->data().to_vector();
  };
  const std::vector<float> plain = forward();
  mirror_rows(host_data_.mutable_data(), host_data_.count(), shape.back());
  const std::vector<float> mirrored = forward();
  const int64_t dim = static_cast<int64_t>(plain.size()) / n;
  for (int64_t i = 0; i < n; ++i) {
    double a = 0, b = 0;
    for (int64_t k = 0; k < dim; ++k) {
      const float p = plain[i * dim + k], m = mirrored[i * dim + k];
      sums->push_back(p + m);
      a += static_cast<double>(p) * p;
      b += static_cast<double>(m) * m;
    }
    norms->push_back(static_cast<float>(std::sqrt(a)));
    norms->push_back(static_cast<float>(std::sqrt(b)));
  }
}

std::vector<float> Validator::gather_in_order(const std::vector<float>& mine, int64_t images, int64_t batch,
                                              int64_t width) {
  const int ranks = host_comm_->size();
  const int64_t batches = (images + batch - 1) / batch;
  auto rows = [&](int64_t k) { return std::min(batch, images - k * batch); };
  std::vector<int64_t> counts(static_cast<size_t>(ranks), 0), offset(static_cast<size_t>(ranks), 0);
  for (int64_t k = 0; k < batches; ++k) counts[k % ranks] += rows(k) * width;
  for (int r = 1; r < ranks; ++r) offset[r] = offset[r - 1] + counts[r - 1];
  std::vector<float> all(static_cast<size_t>(images * width)), ordered;
  host_comm_->all_gather(mine.data(), all.data(), counts);
  ordered.reserve(all.size());
  for (int64_t k = 0; k < batches; ++k) {
    int64_t& at = offset[k % ranks];
    ordered.insert(ordered.end(), all.begin() + at, all.begin() + at + rows(k) * width);
    at += rows(k) * width;
  }
  return ordered;
}

ValidationScore Validator::score(const Set& set) {
  const int64_t n = set.data->size(), batches = (n + set.batch - 1) / set.batch;
  const int rank = host_comm_->rank(), ranks = host_comm_->size();
  const Blob* emb = net_->blob(blob_);
  const int64_t dim = emb->count() / std::max<int64_t>(1, emb->shape(0));
  std::vector<float> sums, norms;
  for (int64_t k = rank; k < batches; k += ranks)
    embed(set, k * set.batch, std::min(set.batch, n - k * set.batch), &sums, &norms);
  const std::vector<float> all_sums = gather_in_order(sums, n, set.batch, dim);
  const std::vector<float> all_norms = gather_in_order(norms, n, set.batch, 2);
  ValidationScore s;
  s.set = set.name;
  s.pairs = static_cast<int64_t>(set.issame.size());
  for (float v : all_norms) s.xnorm += v;
  s.xnorm /= static_cast<double>(all_norms.size());
  const auto acc = insightface_accuracy(normalized_squared_distances(all_sums, dim, consecutive_pairs(s.pairs)),
                                        set.issame, folds_);
  s.accuracy = acc.mean;
  s.std = acc.std;
  return s;
}

}  // namespace coco
