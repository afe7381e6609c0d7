#include "engine/trainer.h"

#include <chrono>
#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/checkpoint.h"
#include "engine/common.h"
#include "engine/logging.h"

namespace coco {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = static_cast<int64_t>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(t / 3600),
                static_cast<long long>(t / 60 % 60), static_cast<long long>(t % 60));
  return buf;
}
}  // namespace

void set_input_batch(proto::NetParameter* net, int64_t batch) {
  if (net->input_dim_size() > 0)
    for (int i = 0; i * 4 < net->input_dim_size(); ++i) net->set_input_dim(4 * i, static_cast<int>(batch));
  for (auto& s : *net->mutable_input_shape())
    if (s.dim_size() > 0) s.set_dim(0, batch);
  for (auto& l : *net->mutable_layer())
    if (l.type() == "Input")
      for (auto& s : *l.mutable_input_param()->mutable_shape())
        if (s.dim_size() > 0) s.set_dim(0, batch);
}

Trainer::Trainer(const TrainOptions& opt, Communicator* comm) : opt_(opt), comm_(comm) {
  cfg_ = load_train_config(opt.config);
  auto& s = cfg_.solver;
  if (opt.seed >= 0) s.set_random_seed(opt.seed);
  seed_ = s.random_seed() >= 0 ? static_cast<uint64_t>(s.random_seed()) : 1;
  if (cfg_.net_only) {
    if (!opt.dry_run)
      COCO_THROW(opt.config, ": holds a net, not a solver; training needs a solver config (use --dry-run to inspect a net)");
    if (opt.batch_size > 0) set_input_batch(&cfg_.net, opt.batch_size);
    train_net_ = std::make_unique<Net>(cfg_.net, Phase::kTrain, comm_, seed_, cfg_.net_origin);
    return;
  }
  validate_solver(s, opt.config);
  if (opt.max_iter >= 0) s.set_max_iter(static_cast<int>(opt.max_iter));
  max_iter_ = s.max_iter();
  if (!s.has_train_data() && !opt.dry_run)
    COCO_THROW(opt.config, ": the solver has no train_data { source: ... } (e.g. \"mnist:data/mnist\")");
  batch_ = opt.batch_size > 0 ? opt.batch_size : s.train_data().batch_size();
  if (batch_ <= 0) COCO_THROW(opt.config, ": batch size must be positive");
  snapshot_prefix_ = !opt.snapshot_prefix.empty() ? opt.snapshot_prefix
                     : s.has_snapshot_prefix()    ? s.snapshot_prefix()
                                                  : "snapshots/" + (cfg_.net.name().empty() ? "net" : cfg_.net.name());

  proto::NetParameter train_param = cfg_.net;
  set_input_batch(&train_param, batch_);
  train_net_ = std::make_unique<Net>(train_param, Phase::kTrain, comm_, seed_, cfg_.net_origin);
  if (opt.dry_run) return;

  if (train_net_->input_blobs().size() != 2)
    COCO_THROW(cfg_.net_origin, ": the net must declare two inputs (data, label), it has ",
               train_net_->input_blobs().size());
  train_data_ = open_data_source(s.train_data(), opt.data_root, seed_, opt.config);
  const Shape want = train_data_->sample_shape();
  const Shape have(train_net_->input_blobs()[0]->shape().begin() + 1, train_net_->input_blobs()[0]->shape().end());
  if (shape_count(want) != shape_count(have))
    COCO_THROW(cfg_.net_origin, ": input '", train_net_->input_names()[0], "' takes samples of shape ", shape_str(have),
               " but ", s.train_data().source(), " gives ", shape_str(want));

  if (s.has_test_data() && s.test_interval() > 0) {
    test_data_ = open_data_source(s.test_data(), opt.data_root, seed_, opt.config);
    test_batch_ = s.test_data().batch_size();
    proto::NetParameter test_param = cfg_.net;
    set_input_batch(&test_param, test_batch_);
    test_net_ = std::make_unique<Net>(test_param, Phase::kTest, comm_, seed_, cfg_.net_origin + " (test)");
    test_net_->share_params_from(*train_net_);
  }
  solver_ = std::make_unique<SgdSolver>(s, train_net_.get());

  if (!opt.weights.empty()) {
    load_weights(*train_net_, opt.weights);
    spdlog::info("initialised parameters from {}", opt.weights);
  }
  if (!opt.resume.empty()) {
    const proto::Checkpoint ckpt = load_checkpoint(opt.resume);
    train_net_->copy_from(ckpt.net(), opt.resume, /*require_all=*/true);
    solver_->restore_state(ckpt.state(), opt.resume);
    start_iter_ = ckpt.iter();
    spdlog::info("resumed from {} at iteration {}", opt.resume, start_iter_);
  }
}

std::string Trainer::describe() const { return train_net_->describe(); }

std::string Trainer::snapshot(int64_t iter) {
  proto::Checkpoint ckpt;
  ckpt.set_iter(iter);
  ckpt.set_random_seed(static_cast<int64_t>(seed_));
  ckpt.set_config_path(opt_.config);
  train_net_->to_proto(ckpt.mutable_net());
  solver_->save_state(ckpt.mutable_state());
  ckpt.mutable_state()->set_iter(static_cast<int>(iter));
  const std::string path = snapshot_prefix_ + "_iter_" + std::to_string(iter) + ".ckpt";
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    const std::string dir = path.substr(0, slash);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) COCO_THROW(dir, ": cannot create the snapshot folder: ", ec.message());
  }
  if (comm_->rank() == 0) save_checkpoint(path, ckpt);
  spdlog::info("snapshot {}", path);
  return path;
}

Trainer::TestOutcome Trainer::test(int64_t iter) {
  TestOutcome out;
  const int64_t n = test_data_->size();
  int64_t batches = (n + test_batch_ - 1) / test_batch_;
  if (!cfg_.solver.test_iter().empty() && cfg_.solver.test_iter(0) > 0)
    batches = std::min<int64_t>(batches, cfg_.solver.test_iter(0));
  Blob* data = test_net_->input_blobs()[0];
  Blob* label = test_net_->input_blobs()[1];
  const Shape sample(data->shape().begin() + 1, data->shape().end());
  std::vector<double> sums(test_net_->output_names().size(), 0.0);
  int64_t seen = 0;
  for (int64_t b = 0; b < batches; ++b) {
    const int64_t start = b * test_batch_, m = std::min(test_batch_, n - start);
    Shape ds{m};
    ds.insert(ds.end(), sample.begin(), sample.end());
    data->reshape(ds);
    label->reshape({m});
    test_data_->fill_range(start, m, data->mutable_data(), label->mutable_data());
    test_net_->forward();
    for (size_t o = 0; o < sums.size(); ++o) {
      const auto v = test_net_->blob(test_net_->output_names()[o])->data().to_vector();
      double s = 0;
      for (float x : v) s += x;
      sums[o] += s * m;
    }
    seen += m;
  }
  nlohmann::json j;
  j["iter"] = iter;
  for (size_t o = 0; o < sums.size(); ++o) {
    const double mean = sums[o] / std::max<int64_t>(seen, 1);
    const float w = test_net_->output_weights()[o];
    if (w != 0) out.loss += w * mean;
    if (test_net_->output_is_accuracy()[o] && !out.has_accuracy) {
      out.accuracy = mean;
      out.has_accuracy = true;
    }
    spdlog::info("test iter {}: {} = {:.6f}", iter, test_net_->output_names()[o], mean);
  }
  spdlog::info("test iter {}: loss {:.6f}{} over {} images", iter, out.loss,
               out.has_accuracy ? fmt::format(", accuracy {:.4f}", out.accuracy) : std::string(), seen);
  return out;
}

TrainResult Trainer::run() {
  COCO_CHECK(!opt_.dry_run && solver_, "run() on a dry-run trainer");
  const auto& s = cfg_.solver;
  std::ofstream metrics;
  if (!opt_.metrics.empty() && comm_->rank() == 0) {
    metrics.open(opt_.metrics, std::ios::app);
    if (!metrics) COCO_THROW(opt_.metrics, ": cannot open the metrics file for writing");
  }
  auto emit = [&](const nlohmann::json& j) {
    if (metrics.is_open()) {
      metrics << j.dump() << "\n";
      metrics.flush();
    }
  };

  TrainResult result;
  result.test_loss = NAN;
  Blob* data = train_net_->input_blobs()[0];
  Blob* label = train_net_->input_blobs()[1];
  const int display = s.display();
  const int window = std::max(1, s.average_loss());
  std::deque<double> recent;
  double recent_sum = 0;
  double train_seconds = 0;
  int64_t train_images = 0;
  double window_seconds = 0;  // training steps only: test passes and snapshots excluded
  int64_t window_iters = 0;
  spdlog::info("training {} from iteration {} to {}, batch {}, {} learnable values, seed {}", opt_.config,
               start_iter_, max_iter_, batch_, train_net_->num_learnable_values(), seed_);

  auto run_test = [&](int64_t it) {
    if (!test_net_) return;
    TestOutcome t = test(it);
    result.test_loss = t.loss;
    result.test_accuracy = t.accuracy;
    nlohmann::json j{{"iter", it}, {"test_loss", t.loss}};
    if (t.has_accuracy) j["test_accuracy"] = t.accuracy;
    emit(j);
  };

  for (int64_t it = start_iter_; it < max_iter_; ++it) {
    if (test_net_ && it % s.test_interval() == 0 && (it > start_iter_ || (it == 0 && s.test_initialization())))
      run_test(it);
    const auto t0 = Clock::now();
    train_data_->fill_train(it * batch_, batch_, data->mutable_data(), label->mutable_data());
    train_net_->set_iter(it);
    train_net_->clear_param_diffs();
    const double loss = train_net_->forward_backward();
    if (!std::isfinite(loss))
      COCO_THROW("iteration ", it, ": the loss is ", loss, " (diverged); lower base_lr or check the data");
    solver_->apply_update(it);
    const double dt = seconds_since(t0);
    train_seconds += dt;
    window_seconds += dt;
    train_images += batch_;
    ++window_iters;

    recent.push_back(loss);
    recent_sum += loss;
    if (static_cast<int>(recent.size()) > window) {
      recent_sum -= recent.front();
      recent.pop_front();
    }
    result.last_loss = recent_sum / recent.size();
    result.iterations = it + 1;

    if (display > 0 && (it + 1) % display == 0) {
      const double ips = window_iters * batch_ / std::max(window_seconds, 1e-9);
      const double eta = (max_iter_ - it - 1) * (window_seconds / window_iters);
      const double lr = solver_->learning_rate(it);
      if (!opt_.quiet)
        spdlog::info("iter {}/{}  loss {:.5f}  lr {:.3g}  {:.1f} images/s  ETA {}", it + 1, max_iter_,
                     result.last_loss, lr, ips, fmt_duration(eta));
      emit({{"iter", it + 1}, {"loss", result.last_loss}, {"lr", lr}, {"images_per_s", ips}});
      window_seconds = 0;
      window_iters = 0;
    }
    if (s.snapshot() > 0 && (it + 1) % s.snapshot() == 0 && it + 1 < max_iter_) result.last_snapshot = snapshot(it + 1);
  }
  result.iterations = std::max<int64_t>(max_iter_, start_iter_);
  if (test_net_ && max_iter_ > start_iter_) run_test(max_iter_);
  if (s.snapshot_after_train() && max_iter_ > start_iter_) result.last_snapshot = snapshot(max_iter_);
  result.images_per_s = train_images / std::max(train_seconds, 1e-9);
  spdlog::info("done: {} iterations, {:.1f} images/s (training steps only)", result.iterations, result.images_per_s);
  return result;
}

}  // namespace coco
